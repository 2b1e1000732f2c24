"""Which relations and indexes the selected registry tables have: catalog reads only, never a lock.

The rows of a table live in its partitions (plain mode) or chunks (TimescaleDB), so vacuum, bloat and
reindex work leaf by leaf: each leaf is one statement, one lock, one line of the record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from quantdbops.sqlfiles import read_sql

_PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_$]*$")


def display_name(schema: str, name: str) -> str:
    """schema.name as PostgreSQL reads it back: quoted only where needed (``to_regclass`` accepts it)."""
    def part(x: str) -> str:
        return x if _PLAIN_NAME.match(x) else sql.Identifier(x).as_string(None)

    return f"{part(schema)}.{part(name)}"


@dataclass(frozen=True)
class Relation:
    """A leaf relation holding rows of a registry table."""

    table_name: str
    schema_name: str
    relation: str
    relid: int
    is_child: bool
    kind: str  # "partition", "chunk", or "table" when the table has no children

    @property
    def qualified(self) -> str:
        return display_name(self.schema_name, self.relation)

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema_name, self.relation)


@dataclass(frozen=True)
class IndexInfo:
    """An index of a leaf relation."""

    indexrelid: int
    schema_name: str
    index_name: str
    relid: int
    access_method: str
    is_valid: bool
    relpages: int
    relfilenode: int

    @property
    def qualified(self) -> str:
        return display_name(self.schema_name, self.index_name)

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema_name, self.index_name)


def hypertable_oids(conn: psycopg.Connection, timescaledb: bool) -> dict[str, int]:
    """{hypertable name: oid} in TimescaleDB mode, else empty."""
    if not timescaledb:
        return {}
    return {r[0]: r[1] for r in conn.execute(read_sql("maintenance/select_hypertables.sql"))}


def table_oids(conn: psycopg.Connection, tables: Sequence[str]) -> dict[str, int]:
    """{registry table: oid} of the selected tables that exist."""
    return dict(conn.execute(read_sql("maintenance/select_table_oids.sql"), {"tables": list(tables)}).fetchall())


def leaf_relations(conn: psycopg.Connection, tables: Sequence[str], hypertables: dict[str, int]) -> list[Relation]:
    """The leaves of the selected tables (a hypertable without chunks has none)."""
    rows = conn.execute(read_sql("maintenance/select_leaf_relations.sql"),
                        {"tables": list(tables), "hypertables": list(hypertables.values())})
    return [Relation(*r) for r in rows]


def indexes_of(conn: psycopg.Connection, relids: Sequence[int]) -> list[IndexInfo]:
    if not relids:
        return []
    return [IndexInfo(*r) for r in conn.execute(read_sql("maintenance/select_indexes.sql"),
                                                {"relids": list(relids)})]


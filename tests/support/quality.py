"""Helpers of the quality tests: loaded sample databases, reused per module.

A database is generated, loaded through the migration's own ``load_table`` and then only read by the
checks; tests that plant defects with SQL do it in a transaction they roll back, where they also fill with valid
rows (``fill_if_empty``) a table the sample has no source for.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from quantdbops import PLATFORM_TZ
from quantdbops.io.pg import connect
from quantdbops.quality.params import QualityRequest
from quantdbops.registry import BY_NAME, Column, Table
from quantdbops.schema.apply import apply_schema
from quantdbops.schema.partitions import ensure_partitions
from sample import generate
from support.migration import load

DEFECTS = {"tickers_per_region": 3, "days": 70, "seed": 23, "defects": True}
CLEAN = {"tickers_per_region": 3, "days": 70, "seed": 23}


@dataclass
class Loaded:
    dsn: str
    manifest: dict
    mode: str

    @property
    def last_date(self) -> date:
        return date.fromisoformat(self.manifest["last_date"])

    def planted(self, kind: str) -> list[dict]:
        return [e for e in self.manifest["planted"] if e["kind"] == kind]


def request(last: date, **params: object) -> QualityRequest:
    """A request as of the sample's last day, whole history unless said otherwise."""
    return QualityRequest.from_params({"lookback_days": 0, **params}, default_as_of=last)


def rolled_back(dsn: str) -> Iterator[psycopg.Connection]:
    """A transaction on ``dsn``, rolled back when the test ends (what the test planted vanishes)."""
    conn = connect(dsn)
    yield conn
    conn.rollback()
    conn.close()


def loaded_database(request_: pytest.FixtureRequest, tmp: Path, sample: dict) -> Iterator[Loaded]:
    mode = request_.param
    cluster = request_.getfixturevalue("tsdb_cluster" if mode == "timescaledb" else "plain_cluster")
    name = f"q_{uuid.uuid4().hex[:12]}"
    cluster.createdb(name)
    dsn = cluster.dsn(name)
    manifest = generate(tmp / "spock_local.db", **sample)
    with connect(dsn, autocommit=True) as conn:
        apply_schema(conn)
    load(tmp / "spock_local.db", dsn)
    with connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
    yield Loaded(dsn, manifest, mode)
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_ONE_OF = re.compile(r"^([a-z0-9_]+) IN \('([^']*)'")  # a vocabulary rule (registry._one_of) and its first word
_POSITIVE = re.compile(r"\b([a-z0-9_]+) > 0\b")


def _valid_value(t: Table, column: Column, i: int, day: date) -> object:
    """Row ``i``'s value of ``column``: the first word of its vocabulary, 1 where a rule wants it > 0, else one of
    its kind. Numbers are 0 (ints: ``i``), which keeps the other rules true: >= 0, a sum, a bound between two."""
    for rule in t.rules:
        if (vocabulary := _ONE_OF.match(rule.expr)) and vocabulary[1] == column.name:
            return vocabulary[2]
    if any(column.name in _POSITIVE.findall(rule.expr) for rule in t.rules):
        return 1
    d = day - timedelta(days=i)
    return {"text": f"{column.name}-{i}", "int": i, "bigint": i, "numeric": 0, "bool": True, "date": d,
            "timestamptz": datetime.combine(d, time(12), ZoneInfo(PLATFORM_TZ)), "jsonb": Jsonb({})}[column.kind]


def _has_rows(conn: psycopg.Connection, t: Table) -> bool:
    return conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier("public", t.name))
                        ).fetchone()[0]


def fill_if_empty(conn: psycopg.Connection, t: Table, day: date, rows: int) -> None:
    """Insert ``rows`` valid rows into ``t`` if it has none, dated ``day`` and the days before, after filling the
    empty tables it references: every column set (identity and generated ones excepted) so that each rule reads
    a value, the foreign keys taken from the referenced rows. PostgreSQL's constraints judge them."""
    if _has_rows(conn, t):
        return
    referenced: dict[str, list[object]] = {}
    for fk in t.foreign_keys:
        ref = BY_NAME[fk.ref_table]
        fill_if_empty(conn, ref, day, rows)
        columns = sql.SQL(", ").join(map(sql.Identifier, fk.ref_columns))
        picked = conn.execute(sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT %s").format(
            columns, sql.Identifier("public", ref.name), columns), (rows,)).fetchall()
        referenced.update((c, [p[n] for p in picked]) for n, c in enumerate(fk.columns))
    if t.partitioned:  # plain mode: the days' partitions (a hypertable makes its chunks)
        ensure_partitions(conn, t, day - timedelta(days=rows - 1), day)
    columns = [c for c in t.columns if not c.generated and c.kind not in ("serial", "bigserial")]
    insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier("public", t.name), sql.SQL(", ").join(sql.Identifier(c.name) for c in columns),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    for i in range(rows):
        conn.execute(insert, [referenced[c.name][i % len(referenced[c.name])] if c.name in referenced
                              else _valid_value(t, c, i, day) for c in columns])


__all__ = ["CLEAN", "DEFECTS", "Loaded", "fill_if_empty", "loaded_database", "request", "rolled_back"]

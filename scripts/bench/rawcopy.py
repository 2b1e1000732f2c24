"""The physical limit: a server-side ``COPY`` of the rows our loader would send, from a pre-rendered file.

The file is rendered once, untimed, by the project's own producer, so it holds exactly the bytes our
loader streams (same columns, same number rendering, same time stamps). Two timed variants:
``COPY`` into the table as it is, and ``COPY`` with the secondary indexes dropped before and rebuilt
after (what our loader does when it rewrites a whole table), in one transaction.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from quantdbops.migration.producer import read_source
from quantdbops.migration.source import source_file
from quantdbops.migration.source_plan import COPY_OPTIONS, SliceFilter, TablePlan
from quantdbops.migration.source_queries import find_duplicates, known_tickers
from quantdbops.migration.target_load import drop_secondary_indexes, recreate_indexes
from quantdbops.registry import Table


@dataclass(frozen=True)
class RenderedFile:
    """A COPY text file and what it holds."""

    path: Path
    columns: tuple[str, ...]
    rows: int
    rejected: int
    size_bytes: int


def render_copy_file(sconn: sqlite3.Connection, pg: psycopg.Connection, table: Table, path: Path) -> RenderedFile:
    """Write the table's loadable rows as PostgreSQL text COPY (readable by the server's OS user)."""
    plan = TablePlan(table)
    flt = SliceFilter()
    known = known_tickers(sconn, pg, from_source=False) if (table.ticker_column or table.ticker_refs) else None
    dups = find_duplicates(sconn, plan, flt)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o755)
    with path.open("wb") as fh:
        result = read_source(source_file(sconn), table.name, flt, None, known, dups, fh.write)
    os.chmod(path, 0o644)
    return RenderedFile(path=path, columns=plan.query(flt).columns, rows=sum(result.rows.values()),
                        rejected=len(result.rejects), size_bytes=path.stat().st_size)


def _copy_statement(table: Table, rendered: RenderedFile) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM {} " + COPY_OPTIONS).format(
        sql.Identifier("public", table.name),
        sql.SQL(", ").join(sql.Identifier(c) for c in rendered.columns),
        sql.Literal(str(rendered.path)))


def copy_file(pg: psycopg.Connection, table: Table, rendered: RenderedFile, *,
              rebuild_indexes: bool) -> tuple[float, int]:
    """Time one transaction: [drop secondary indexes,] COPY the file[, recreate them]. ``pg`` is autocommit.

    Returns (seconds, rows copied).
    """
    started = time.perf_counter()
    with pg.transaction():
        pg.execute("SET LOCAL maintenance_work_mem = '256MB'")  # as the loader's transaction
        dropped = drop_secondary_indexes(pg, table) if rebuild_indexes else []
        rows = pg.execute(_copy_statement(table, rendered)).rowcount
        recreate_indexes(pg, dropped)
    return time.perf_counter() - started, rows

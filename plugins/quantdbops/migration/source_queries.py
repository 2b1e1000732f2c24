"""Source-side queries the loader and the validator share: a slice's rows and dates, the rows whose mapped key
another row already has, and the tickers a row may reference. They read the source (and, for the tickers, the
target's own list); neither side writes anything here."""

from __future__ import annotations

import sqlite3
from datetime import date

import psycopg

from quantdbops.migration.producer import read_source
from quantdbops.migration.source import source_file, source_key_is_unique
from quantdbops.migration.source_plan import SliceFilter, TablePlan
from quantdbops.sqlfiles import read_sql


def known_tickers(sconn: sqlite3.Connection, pg: psycopg.Connection | None,
                  from_source: bool) -> list[tuple[str, str]]:
    """The (ticker, region) pairs a row may reference: the target's tickers; in a dry run (``from_source``),
    where nothing was written, the target's and those the tickers load would write."""
    target: list[tuple[str, str]] = []
    if pg is not None and pg.execute(read_sql("migration/select_tickers_table.sql")).fetchone()[0]:
        target = [tuple(r) for r in pg.execute(read_sql("migration/select_tickers.sql"))]
    if not from_source and pg is not None:
        return target
    return sorted(set(target) | set(would_load_tickers(sconn)))


def would_load_tickers(sconn: sqlite3.Connection) -> list[tuple[str, str]]:
    """The (ticker, region) of every source ticker the tickers load would write (its checks passed)."""
    from quantdbops.registry import TICKERS

    refused = {r[0] for r in read_source(source_file(sconn), TICKERS.name, SliceFilter(), None, None,
                                         find_duplicates(sconn, TablePlan(TICKERS), SliceFilter()),
                                         lambda _b: None).rejects}
    rows = sconn.execute(read_sql("migration/source/select_tickers.sql"))
    return [(ticker, region) for rowid, ticker, region in rows if rowid not in refused]


def find_duplicates(sconn: sqlite3.Connection, plan: TablePlan, flt: SliceFilter) -> dict[int, int]:
    """Rows whose mapped key another row already has -> the rowid kept.

    Where the source's own unique constraints make the unmapped key unique, only rows a mapping may make
    collide are looked at; a source table without such a constraint has its whole key ranked."""
    found = plan.collision_sql(flt, whole_key=not source_key_is_unique(sconn, plan.table))
    if found is None:
        return {}
    query, params = found
    return dict(sconn.execute(query, params))


def count_rows(sconn: sqlite3.Connection, plan: TablePlan, flt: SliceFilter) -> int:
    params: list[object] = []
    where = plan.where(flt, params)
    joins = plan.source_ticker_join() if where else ""
    return sconn.execute(f'SELECT count(*) FROM main."{plan.table.source}" s {joins} {where}', params).fetchone()[0]


def time_range(sconn: sqlite3.Connection, plan: TablePlan, flt: SliceFilter) -> tuple[date, date] | None:
    """First and last well-formed date of the slice (plain mode creates partitions for them)."""
    expr = plan.time_source_expr()
    if expr is None:
        return None
    params: list[object] = []
    where = plan.where(flt, params)
    day = f"substr({expr}, 1, 10)"
    glob = f"date(julianday({day})) = {day}"  # real calendar dates only, as the row checks require
    where = f"{where} AND {glob}" if where else f"WHERE {glob}"
    joins = plan.source_ticker_join()
    lo, hi = sconn.execute(
        f'SELECT min(substr({expr}, 1, 10)), max(substr({expr}, 1, 10)) FROM main."{plan.table.source}" s '
        f"{joins} {where}", params).fetchone()
    if lo is None:
        return None
    try:
        return date.fromisoformat(lo), date.fromisoformat(hi)
    except ValueError:
        return None  # e.g. '2024-02-30' sorts but is no date: such rows are rejected anyway

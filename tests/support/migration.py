"""Helpers of the migration tests: samples, source and target counts, the migration's own load and validation.

Everything the tests compare against is computed here independently of the loader: source counts with
our own SQL over the SQLite file, target fingerprints from ``information_schema`` and ``md5``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from quantdbops import REGIONS
from quantdbops.io.pg import DbMode, connect, detect_mode
from quantdbops.migration.results import TableLoadResult
from quantdbops.migration.source import open_source
from quantdbops.migration.source_plan import SliceFilter
from quantdbops.migration.target_load import load_table
from quantdbops.migration.validate import CheckResult, Validator
from quantdbops.registry import Table, migratable_tables, table
from quantdbops.schema.apply import apply_schema
from sample import generate
from support import dags

MIGRATABLE: tuple[Table, ...] = migratable_tables()
CLEAN_SAMPLE = {"tickers_per_region": 4, "days": 80, "seed": 11}
DEFECTS_SAMPLE = {"tickers_per_region": 3, "days": 70, "seed": 23, "defects": True}


# --- samples ------------------------------------------------------------------------------------------
def make_sample(directory: Path, **kwargs: Any) -> tuple[Path, dict]:
    """A source file (used read-only by the tests) and its manifest."""
    path = directory / "spock_local.db"
    return path, generate(path, **kwargs)


# --- the source side, computed with our own SQL ------------------------------------------------------
def _source_columns(s: sqlite3.Connection, name: str) -> set[str]:
    return {r[1] for r in s.execute(f'PRAGMA table_info("{name}")')}


def source_time_expr(t: Table) -> str | None:
    """The source expression of a table's time column (a derived date is the first 10 characters)."""
    if not t.time_column:
        return None
    if t.time_column in t.derived:
        return f'substr(s."{t.derived[t.time_column]}", 1, 10)'
    return f's."{t.column(t.time_column).source_column}"'


def _spelled_region(expr: str) -> str:
    """The region an expression spells in any case with surrounding spaces, else NULL."""
    names = ", ".join(f"'{r}'" for r in REGIONS)
    return f"(SELECT r FROM (SELECT upper(trim({expr})) AS r) WHERE r IN ({names}))"


def source_region_expr(s: sqlite3.Connection, t: Table) -> str:
    """The region slice of a source row: the region its own region column spells (any case, spaces
    around), else its ticker's; NULL where neither spells one (such rows are quarantined as UNKNOWN).

    Market-wide tables have no Spock region; the loader keeps them in one slice ('ALL').
    """
    if not t.has_region:
        return "'ALL'"
    own = "region" in _source_columns(s, t.source or "")
    via_ticker = (f"(SELECT {_spelled_region('k.region')} FROM main.tickers k WHERE k.ticker = "
                  f"s.\"{t.ticker_column}\")") if t.ticker_column else "NULL"
    return f"coalesce({_spelled_region('s.region')}, {via_ticker})" if own else via_ticker


def source_counts(path: Path | str, t: Table, *, regions: Iterable[str] | None = None,
                  start: date | None = None, end: date | None = None) -> dict[str | None, int]:
    """Source rows of ``t`` per region (None: no region can be found), optionally sliced."""
    s = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    s.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
    try:
        region = source_region_expr(s, t)
        conds, params = ["1"], []
        tx = source_time_expr(t)
        if tx and start:
            conds.append(f"{tx} >= ?")
            params.append(start.isoformat())
        if tx and end:
            conds.append(f"{tx} <= ?")
            params.append(end.isoformat())
        counts = dict(s.execute(
            f'SELECT {region}, count(*) FROM main."{t.source}" s WHERE {" AND ".join(conds)} GROUP BY 1',
            params).fetchall())
    finally:
        s.close()
    if regions is not None and t.has_region:
        counts = {r: n for r, n in counts.items() if r in set(regions)}
    return counts


# --- the target side ------------------------------------------------------------------------------------
def target_counts(conn: psycopg.Connection, t: Table) -> dict[str, int]:
    """Target rows per region ('ALL' for market-wide tables)."""
    region = sql.SQL("region") if t.has_region else sql.Literal("ALL")
    return dict(conn.execute(sql.SQL("SELECT {}, count(*) FROM {} GROUP BY 1").format(
        region, sql.Identifier("public", t.name))).fetchall())


def content_columns(conn: psycopg.Connection, name: str, schema: str = "public") -> list[str]:
    """Columns whose value comes from the data: not identities, not generated, not defaulted to now()."""
    return [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "AND is_identity = 'NO' AND is_generated = 'NEVER' AND coalesce(column_default, '') NOT ILIKE %s "
        "ORDER BY ordinal_position", (schema, name, "%now()%"))]


def fingerprint(conn: psycopg.Connection, name: str, schema: str = "public") -> tuple[int, str]:
    """(rows, md5 of every row's text in a fixed order) of a table's content columns."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in content_columns(conn, name, schema))
    return tuple(conn.execute(sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
        "FROM (SELECT {} FROM {}) x").format(cols, sql.Identifier(schema, name))).fetchone())  # type: ignore[return-value]


def fingerprints(conn: psycopg.Connection, names: Iterable[str] | None = None) -> dict[str, tuple[int, str]]:
    return {n: fingerprint(conn, n) for n in (names or [t.name for t in MIGRATABLE])}


def ops_counts(conn: psycopg.Connection) -> dict[str, int]:
    return {n: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("ops", n))).fetchone()[0]
            for n in ("migration_rejects", "migration_checksums", "migration_runs", "validation_results")}


def quarantine_labels(conn: psycopg.Connection, run_id: str | None = None) -> set[tuple[str, int, str]]:
    """(table, source rowid, label) of every quarantined row; the label is 'reason:detail' as the registry
    declares it: without the note an invalid_text detail carries, a duplicate key's detail as 'key'."""
    rows = conn.execute("SELECT table_name, source_rowid, reason, detail FROM ops.migration_rejects "
                        "WHERE run_id = %s OR %s::text IS NULL", (run_id, run_id)).fetchall()
    labels = [(table, rowid, f"{reason}:{'key' if reason == 'duplicate_key' else detail.split(': ', 1)[0]}")
              for table, rowid, reason, detail in rows]
    assert len(labels) == len(set(labels)), "a source row quarantined twice"
    return set(labels)


def duplicate_keys(conn: psycopg.Connection, t: Table) -> int:
    key = sql.SQL(", ").join(sql.Identifier(c) for c in t.key)
    return conn.execute(sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} GROUP BY {} HAVING count(*) > 1) d")
                        .format(sql.Identifier("public", t.name), key)).fetchone()[0]


# --- running the migration's own code -------------------------------------------------------------------
def load(source: Path | str, dsn: str, names: Iterable[str] | None = None, flt: SliceFilter | None = None,
         *, run_id: str = "test-run", dry_run: bool = False) -> dict[str, TableLoadResult]:
    """Load tables (default: every migratable one, tickers first) as the load task does."""
    flt = flt or SliceFilter()
    wanted = [t for t in MIGRATABLE if names is None or t.name in set(names)]
    sconn = open_source(source)
    out = {}
    with connect(dsn) as pg:
        mode = detect_mode(pg)
        pg.commit()
        for t in wanted:
            out[t.name] = load_table(sconn, pg, t, flt, run_id=run_id, mode=mode, dry_run=dry_run, workers=1)
    sconn.close()
    return out


def validate(source: Path | str, dsn: str, names: Iterable[str] | None = None,
             flt: SliceFilter | None = None) -> list[CheckResult]:
    """Every validation check on the given tables, as the validate task runs them."""
    flt = flt or SliceFilter()
    tables = [t for t in MIGRATABLE if names is None or t.name in set(names)]
    sconn = open_source(source)
    with connect(dsn, autocommit=True) as pg:
        mode: DbMode = detect_mode(pg)
        results = Validator(sconn, pg, tables, flt, mode).run()
    sconn.close()
    return results


def failures(results: list[CheckResult]) -> list[tuple[str, str | None, str | None, str, str]]:
    return [(r.check, r.table, r.region, r.expected, r.actual) for r in results if r.status == "fail"]


def plant_tamper_trigger(conn: psycopg.Connection, source: Path | str) -> tuple[str, str, str, float, float]:
    """Apply the schema, then a trigger that sets close := low on one OHLCV row as it is inserted.

    A fault no reject and no row count can see: the loads succeed and only the content checks differ.
    Returns that row's ticker, region, date, and its source close and low.
    """
    with sqlite3.connect(source) as s:
        ticker, region, day, close, low = s.execute(
            "SELECT ticker, region, date, close, low FROM ohlcv_data WHERE close <> low ORDER BY id "
            "LIMIT 1 OFFSET 40").fetchone()
    apply_schema(conn)
    conn.execute(
        "CREATE FUNCTION public.test_tamper() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.ticker = '{ticker}' AND NEW.region = '{region}' AND NEW.date = '{day}' THEN "
        "NEW.close := NEW.low; END IF; RETURN NEW; END $$")
    conn.execute("CREATE TRIGGER test_tamper BEFORE INSERT ON public.ohlcv_data FOR EACH ROW "
                 "EXECUTE FUNCTION public.test_tamper()")
    return ticker, region, day, close, low


def load_dag() -> Any:
    """The migration DAG object."""
    return dags.load_dag("migrate_sqlite_to_postgres")


def task_states(dag_run: Any) -> dict[str, tuple[str | None, int]]:
    return {ti.task_id: (ti.state, ti.try_number) for ti in dag_run.get_task_instances()}


__all__ = [
    "CLEAN_SAMPLE", "DEFECTS_SAMPLE", "MIGRATABLE", "content_columns", "duplicate_keys", "failures",
    "fingerprint", "fingerprints", "load", "load_dag", "make_sample", "ops_counts", "plant_tamper_trigger",
    "quarantine_labels", "source_counts",
    "source_region_expr", "source_time_expr", "table", "target_counts", "task_states", "validate",
]

"""Helpers of the maintenance tests: data written as the platform writes it, the steps run as the operators run them.

Data is written with plain SQL on a separate connection that is closed right away: a backend flushes its
table statistics when it ends, so the maintenance sees the dead tuples the test just made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from quantdbops.io.pg import connect
from quantdbops.maintenance.params import MaintenanceRequest
from quantdbops.maintenance.session import maintenance_session
from support import dags


def say(*_args: object) -> None:
    """Progress sink of the step functions (tests read the record instead)."""


def write(dsn: str, *statements: str | sql.Composable, params: Any = None) -> None:
    """Run statements in their own committed session, then end it (its statistics are flushed)."""
    with connect(dsn, autocommit=True) as conn:
        for stmt in statements:
            conn.execute(stmt, params)


def wait_for_stats(conn: psycopg.Connection, relation: str, predicate: Callable[[dict], bool],
                   seconds: float = 10.0) -> dict:
    """pg_stat_all_tables of a relation once ``predicate`` holds (statistics arrive asynchronously)."""
    deadline = time.monotonic() + seconds
    while True:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        row = cur.execute("SELECT * FROM pg_stat_all_tables WHERE relid = to_regclass(%s)", (relation,)).fetchone()
        if row and predicate(row):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"statistics of {relation} never satisfied the condition: {row}")
        time.sleep(0.2)


def seed_tickers(dsn: str, n: int, *, region: str = "KR") -> None:
    write(dsn, "INSERT INTO tickers (ticker, region, name, exchange, currency, asset_type, market_cap, created_at, "
               "last_updated) SELECT 'T' || lpad(i::text, 6, '0'), %(region)s, 'name ' || i, 'KRX', 'KRW', 'STOCK', "
               "i * 1000, now(), now() FROM generate_series(1, %(n)s) i ON CONFLICT DO NOTHING",
          params={"n": n, "region": region})


def seed_ohlcv(dsn: str, tickers: int, first: str, last: str) -> None:
    """Daily rows of the first ``tickers`` tickers between two dates (valid OHLC)."""
    write(dsn, "INSERT INTO ohlcv_data (ticker, region, date, timeframe, open, high, low, close, volume, created_at) "
               "SELECT 'T' || lpad(i::text, 6, '0'), 'KR', d::date, 'D', 10, 12, 9, 11, 1000 + i, now() "
               "FROM generate_series(1, %(n)s) i, generate_series(%(first)s::date, %(last)s::date, '1 day') d",
          params={"n": tickers, "first": first, "last": last})


def run(dsn: str, run_id: str, *steps: Callable[..., Any], **params: Any) -> list[Any]:
    """Run step functions as the DAG's operators do (one session, the request's timeouts set)."""
    request = MaintenanceRequest.from_params(params)
    out = []
    with maintenance_session(dsn, request, run_id) as s:
        for step in steps:
            out.append(step(s, request))
    return out


def records(conn: psycopg.Connection, run_id: str, action: str | None = None) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return list(cur.execute(
        "SELECT * FROM ops.maintenance_log WHERE run_id = %s AND (%s::text IS NULL OR action = %s) ORDER BY id",
        (run_id, action, action)))


def lock_timeouts(logfile: Path, offset: int) -> list[str]:
    """The statements the server cancelled for a lock timeout since byte ``offset`` of its log, in order: the
    server's own count of refused attempts (each an ERROR, then its CONTEXT and STATEMENT lines)."""
    with logfile.open("rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode("utf-8", "replace").splitlines()
    out = []
    for i, line in enumerate(lines):
        if "canceling statement due to lock timeout" in line:
            rest = (x for x in lines[i + 1:] if "STATEMENT:" in x or "ERROR:" in x)
            out.append(next((x.split("STATEMENT:", 1)[1].strip() for x in rest if "STATEMENT:" in x), "?"))
    return out


def index_state(conn: psycopg.Connection, qualified: str) -> tuple[int, int] | None:
    """(relfilenode, bytes) of an index, None when it does not exist."""
    return conn.execute("SELECT relfilenode::bigint, pg_relation_size(oid) FROM pg_class "
                        "WHERE oid = to_regclass(%s)", (qualified,)).fetchone()


def load_dag() -> Any:
    """The weekly maintenance DAG object."""
    return dags.load_dag("postgres_maintenance_weekly")


# Step adapters: (session, request) -> result, exactly the calls the operators make.
def vacuum_step(s: Any, r: MaintenanceRequest) -> Any:
    from quantdbops.maintenance.vacuum import vacuum_tables

    return vacuum_tables(s.conn, r, s.mode, s.log, s.timeouts, say)


def bloat_step(s: Any, r: MaintenanceRequest) -> Any:
    from quantdbops.maintenance.reindex import measure_bloat

    return measure_bloat(s.conn, r, s.mode, s.log, s.timeouts, say)


def bloat_and_reindex_step(s: Any, r: MaintenanceRequest) -> Any:
    from quantdbops.maintenance.reindex import measure_bloat, reindex_bloated

    measured = measure_bloat(s.conn, r, s.mode, s.log, s.timeouts, say)
    return reindex_bloated(s.conn, r, s.mode, s.log, s.timeouts, say, measured["candidates"])


def sizes_step(s: Any, r: MaintenanceRequest) -> Any:
    from quantdbops.maintenance.usage import sizes

    return sizes(s.conn, r, s.mode, s.log, s.timeouts)


def compress_step(s: Any, r: MaintenanceRequest) -> Any:
    from quantdbops.maintenance.timescaledb_upkeep import compress_old_chunks

    return compress_old_chunks(s.conn, r, s.mode, s.log, s.timeouts, say)

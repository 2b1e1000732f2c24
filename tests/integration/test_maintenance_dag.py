"""The maintenance DAG end to end through ``dag.test()``: real Airflow, real PostgreSQL.

A dry run changes nothing but the record; a real run completes while another session holds a table
exclusively, skips that table within the lock timeout and reports it, and maintains the rest.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from quantdbops.io.pg import detect_mode
from quantdbops.registry import table
from quantdbops.schema.partitions import ensure_partitions
from support.harness import MODES
from support.maintenance import load_dag, records, seed_ohlcv, seed_tickers, wait_for_stats, write

pytestmark = pytest.mark.slow
STEPS = ("vacuum_analyze", "measure_bloat", "reindex_bloated", "timescaledb_upkeep", "plain_upkeep", "usage_report")


def _states(dag_run: Any) -> dict[str, str | None]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def _dirty(dsn: str, conn: psycopg.Connection) -> None:
    seed_tickers(dsn, 300)
    if not detect_mode(conn).timescaledb:
        ensure_partitions(conn, table("ohlcv_data"), date(2024, 1, 1), date(2024, 3, 31))
    seed_ohlcv(dsn, 20, "2024-01-01", "2024-03-31")  # old enough to be compressed in TimescaleDB mode
    write(dsn, "UPDATE tickers SET market_cap = market_cap + 1",
          "INSERT INTO strategies (name) SELECT 's' || i FROM generate_series(1, 200) i",
          "UPDATE strategies SET description = 'x'")
    wait_for_stats(conn, "public.tickers", lambda r: r["n_dead_tup"] > 0)
    wait_for_stats(conn, "public.strategies", lambda r: r["n_dead_tup"] > 0)


def test_schedule_is_sundays_at_three_in_seoul() -> None:
    dag = load_dag()
    timetable = dag.timetable
    assert type(timetable).__name__ == "CronTriggerTimetable"
    assert timetable.expression == "0 3 * * 0"  # minute 0, hour 3, Sunday
    assert str(getattr(timetable.timezone, "name", timetable.timezone)) == "Asia/Seoul"
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.get_task("summary").trigger_rule == "all_done"


@pytest.mark.parametrize("mode", MODES)
def test_dry_run_changes_nothing_but_the_record(mode: str, airflow_db: Path, airflow_connections: dict[str, str],
                                                schema_conn: psycopg.Connection) -> None:
    dsn = airflow_connections["pg_dsn"]
    _dirty(dsn, schema_conn)
    dead_before = wait_for_stats(schema_conn, "public.tickers", lambda r: True)["n_dead_tup"]
    chunks = "SELECT count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks"
    compressed_before = schema_conn.execute(chunks).fetchone()[0] if mode == "timescaledb" else None

    dr = load_dag().test(run_conf={"dry_run": True, "tables": ["tickers", "strategies", "ohlcv_data"]})

    states = _states(dr)
    assert dr.state == "success", states
    skipped_mode = "plain_upkeep" if mode == "timescaledb" else "timescaledb_upkeep"
    assert states[skipped_mode] == "skipped"
    assert {states[t] for t in ("prepare", *STEPS, "summary") if t != skipped_mode} == {"success"}
    after = wait_for_stats(schema_conn, "public.tickers", lambda r: True)
    assert after["n_dead_tup"] == dead_before and after["last_vacuum"] is None
    if mode == "timescaledb":
        assert schema_conn.execute(chunks).fetchone()[0] == compressed_before
    rows = records(schema_conn, dr.run_id)
    statuses = {r["status"] for r in rows}
    assert "dry_run" in statuses and not statuses & {"done", "failed"}
    assert {r["object_name"].replace('"', "") for r in rows if r["action"] == "vacuum"} >= {"public.tickers"}
    assert rows[-1]["action"] == "run_summary"


@pytest.mark.parametrize("mode", MODES)
def test_real_run_completes_and_skips_a_locked_table(mode: str, airflow_db: Path,
                                                     airflow_connections: dict[str, str],
                                                     schema_conn: psycopg.Connection) -> None:
    dsn = airflow_connections["pg_dsn"]
    _dirty(dsn, schema_conn)
    holder = psycopg.connect(dsn)
    holder.execute("LOCK TABLE public.tickers IN ACCESS EXCLUSIVE MODE")
    try:
        dr = load_dag().test(run_conf={"dry_run": False, "tables": ["tickers", "strategies", "ohlcv_data"],
                                       "lock_timeout_s": 1, "min_index_kb": 0})
    finally:
        holder.rollback()
        holder.close()

    states = _states(dr)
    assert dr.state == "success", states
    rows = records(schema_conn, dr.run_id)
    locked = [r for r in rows if (r["object_name"] or "").replace('"', "") == "public.tickers"]
    assert locked and {r["status"] for r in locked} == {"skipped"}
    assert all("lock_timeout" in r["message"] for r in locked)
    vacuumed = {r["object_name"].replace('"', "") for r in rows if r["action"] == "vacuum" and r["status"] == "done"}
    assert "public.strategies" in vacuumed
    assert wait_for_stats(schema_conn, "public.strategies", lambda r: True)["last_vacuum"] is not None
    mode_actions = {"compress_chunk", "chunk_count", "compression_ratio"} if mode == "timescaledb" \
        else {"create_partitions"}
    assert {r["action"] for r in rows} >= {"run_start", "vacuum", "table_bloat", "index_bloat", "size",
                                           "refresh_aggregate", "run_summary", *mode_actions}
    if mode == "timescaledb":  # the 2024 chunks are older than the 90-day policy: compressed by the run
        assert schema_conn.execute("SELECT bool_and(is_compressed) FROM timescaledb_information.chunks "
                                   "WHERE hypertable_name = 'ohlcv_data'").fetchone()[0]
    assert rows[-1]["action"] == "run_summary" and rows[-1]["status"] == "measured"

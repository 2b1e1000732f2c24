"""The migration DAG end to end through ``dag.test()``: real Airflow, real PostgreSQL, real SQLite file.

Each ``dag.test()`` takes 10-15 s, so only what needs the whole DAG is here; the load and validation
behaviours are tested directly in ``test_migration_load.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_migration_support import (
    CLEAN_SAMPLE,
    DEFECTS_SAMPLE,
    MIGRATABLE,
    load,
    load_dag,
    plant_tamper_trigger,
    quarantine_labels,
    source_counts,
    target_counts,
    task_states,
)

from conftest import MODES
from quantdbops.registry import OHLCV_DATA, migratable_tables
from quantdbops.sample import generate
from quantdbops.schema.apply import apply_schema

pytestmark = pytest.mark.slow
LOAD_TASKS = {f"load_{t.name}" for t in migratable_tables()}


def _xcoms(dag_run: Any, task_ids: set[str]) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id,
                                                  task_ids=list(task_ids), key="return_value")).all()
        return {r.task_id: XComModel.deserialize_value(r) for r in rows}


def _relations(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN ('public', 'ops') ORDER BY 1")]


def test_validate_never_retries_while_loads_do() -> None:
    dag = load_dag()
    assert dag.get_task("validate").retries == 0
    assert all(dag.get_task(task_id).retries > 0 for task_id in LOAD_TASKS)  # transient errors: retried


@pytest.mark.parametrize("mode", MODES)
def test_dry_run_through_the_dag_writes_nothing(
    mode: str, airflow_db: Path, airflow_connections: dict[str, str], pg_conn: psycopg.Connection
) -> None:
    path = airflow_connections["sqlite_path"]
    manifest = generate(path, **DEFECTS_SAMPLE)
    dr = load_dag().test(run_conf={"dry_run": True})
    states = {k: v[0] for k, v in task_states(dr).items()}
    assert dr.state == "success", states
    assert states["benchmark"] == "skipped" and states["publish"] == "skipped"
    assert {states[t] for t in LOAD_TASKS | {"prepare", "validate", "summary"}} == {"success"}
    assert _relations(pg_conn) == []  # not even the schema was created

    loads = _xcoms(dr, LOAD_TASKS)
    assert set(loads) == LOAD_TASKS
    rejected: Counter = Counter()
    for task_id, x in loads.items():
        assert x["dry_run"] is True
        assert x["source_rows"] == x["loaded"] + sum(x["rejected"].values()), task_id
        assert x["source_rows"] == sum(source_counts(path, next(
            t for t in MIGRATABLE if f"load_{t.name}" == task_id)).values()), task_id
        for reason, n in x["rejected"].items():
            rejected[(x["table"], reason)] += n
    assert rejected == Counter((e["table"], e["reason"]) for e in manifest["planted"] if e["expect"] == "reject")


@pytest.mark.parametrize("mode", MODES)
def test_end_to_end_on_the_defects_sample(
    mode: str, airflow_db: Path, airflow_connections: dict[str, str], pg_conn: psycopg.Connection
) -> None:
    path = airflow_connections["sqlite_path"]
    manifest = generate(path, **DEFECTS_SAMPLE)
    dr = load_dag().test(run_conf={"dry_run": False})
    states = task_states(dr)
    assert dr.state == "success", states
    assert {s for s, _ in states.values()} == {"success"}, states

    recorded_mode = pg_conn.execute("SELECT mode FROM ops.schema_version ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert recorded_mode == mode
    results = pg_conn.execute(
        "SELECT check_name, table_name, region, status FROM ops.validation_results WHERE run_id = %s",
        (dr.run_id,)).fetchall()
    assert results and [r for r in results if r[3] == "fail"] == []
    assert {r[1] for r in results if r[0] == "content_checksum" and r[3] == "pass"} == {t.name for t in MIGRATABLE}
    assert _xcoms(dr, {"validate"})["validate"]["failed"] == 0

    runs = {(r[0], r[1]): r[2:] for r in pg_conn.execute(
        "SELECT table_name, region, source_rows, loaded_rows, rejected_rows FROM ops.migration_runs "
        "WHERE run_id = %s", (dr.run_id,))}
    expected = {(t.name, region if region is not None else "UNKNOWN"): n
                for t in MIGRATABLE for region, n in source_counts(path, t).items()}
    assert {k: v[0] for k, v in runs.items()} == expected  # a row per table and region, source rows exact
    for key, (source_rows, loaded, rejected) in runs.items():
        assert source_rows == loaded + rejected, key
    assert quarantine_labels(pg_conn, dr.run_id) == {
        (e["table"], e["rowid"], e["label"]) for e in manifest["planted"] if e["expect"] == "reject"}

    # The aggregates over ohlcv_data hold the migrated data right away (not only after the weekly refresh):
    # as many rows as the buckets the loaded daily bars fall in, counted here from the table itself.
    buckets = pg_conn.execute(
        "SELECT count(DISTINCT (ticker, region, date_trunc('month', date))), "
        "count(DISTINCT (ticker, region, date_trunc('year', date))), count(DISTINCT (date, region)) "
        "FROM public.ohlcv_data WHERE timeframe = 'D'").fetchone()
    held = tuple(pg_conn.execute(f"SELECT count(*) FROM public.{v}").fetchone()[0]
                 for v in ("ohlcv_monthly", "ohlcv_yearly", "ohlcv_daily_summary"))
    assert held == buckets and min(held) > 0
    refreshed = {r["view"]: r["rows"] for r in _xcoms(dr, {"refresh_aggregates"})["refresh_aggregates"]}
    assert refreshed == {v: pg_conn.execute(f"SELECT count(*) FROM public.{v}").fetchone()[0]
                         for v in ("ohlcv_monthly", "ohlcv_quarterly", "ohlcv_yearly", "ohlcv_daily_summary")}


@pytest.mark.parametrize("mode", MODES)
def test_a_content_mismatch_fails_validate_once_without_retry(
    mode: str, airflow_db: Path, airflow_connections: dict[str, str], pg_conn: psycopg.Connection
) -> None:
    """A trigger changes one row as it is loaded: the target no longer equals what was read."""
    path = airflow_connections["sqlite_path"]
    generate(path, **CLEAN_SAMPLE)
    ticker, region, day, close, low = plant_tamper_trigger(pg_conn, path)

    dr = load_dag().test(run_conf={"dry_run": False, "tables": ["tickers", "ohlcv_data"]})
    states = task_states(dr)
    assert dr.state == "failed"
    assert states["load_tickers"][0] == states["load_ohlcv_data"][0] == "success"
    assert states["validate"] == ("failed", 1)
    validate_ti = next(ti for ti in dr.get_task_instances() if ti.task_id == "validate")
    assert validate_ti.max_tries == 0
    assert {states[t][0] for t in ("benchmark", "summary", "publish")} == {"upstream_failed"}

    failed = pg_conn.execute(
        "SELECT check_name, table_name, details FROM ops.validation_results WHERE run_id = %s AND status = 'fail'",
        (dr.run_id,)).fetchall()
    content = [r for r in failed if r[0] == "content_checksum"]
    assert [r[1] for r in content] == ["ohlcv_data"]
    details = content[0][2] if isinstance(content[0][2], dict) else json.loads(content[0][2])
    assert [(r["key"]["ticker"], r["key"]["region"], r["key"]["date"], list(r["columns"])) for r in details["rows"]] \
        == [(ticker, region, day, ["close"])]
    assert details["rows"][0]["columns"]["close"]["source"] == repr(close)
    assert details["rows"][0]["columns"]["close"]["target"] == repr(low)
    assert {r[1] for r in failed} == {"ohlcv_data"}


@pytest.mark.parametrize("mode", MODES[:1])
def test_selecting_one_table_without_tickers_loads_that_table(
    mode: str, airflow_db: Path, airflow_connections: dict[str, str], pg_conn: psycopg.Connection
) -> None:
    path = airflow_connections["sqlite_path"]
    generate(path, **CLEAN_SAMPLE)
    apply_schema(pg_conn)
    load(path, airflow_connections["pg_dsn"], ["tickers"], run_id="tickers-only")  # tickers already there
    assert target_counts(pg_conn, OHLCV_DATA) == {}

    dr = load_dag().test(run_conf={"dry_run": False, "tables": ["ohlcv_data"]})
    states = task_states(dr)
    assert states["load_tickers"][0] == "skipped"  # not selected
    assert states["load_ohlcv_data"][0] == "success", states
    assert target_counts(pg_conn, OHLCV_DATA) == source_counts(path, OHLCV_DATA)
    assert dr.state == "success"

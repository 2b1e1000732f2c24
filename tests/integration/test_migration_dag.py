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

from quantdbops.registry import OHLCV_DATA, migratable_tables
from quantdbops.schema.apply import apply_schema
from sample import generate
from support.harness import MODES
from support.migration import (
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

pytestmark = pytest.mark.slow
LOAD_TASKS = {f"load_{t.name}" for t in migratable_tables()}


def _xcoms(dag_run: Any, task_ids: set[str]) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.sdk.serde import deserialize  # our results come back as their classes
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id,
                                                  task_ids=list(task_ids), key="return_value")).all()
        return {r.task_id: deserialize(XComModel.deserialize_value(r)) for r in rows}


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
        assert x.dry_run is True
        assert x.source_rows == x.loaded + sum(x.rejected.values()), task_id
        assert x.source_rows == sum(source_counts(path, next(
            t for t in MIGRATABLE if f"load_{t.name}" == task_id)).values()), task_id
        for reason, n in x.rejected.items():
            rejected[(x.table, reason)] += n
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
    # every task succeeded but prune_tickers, which only runs when asked for
    assert {s for t, (s, _) in states.items() if t != "prune_tickers"} == {"success"}, states
    assert states["prune_tickers"][0] == "skipped"

    recorded_mode = pg_conn.execute("SELECT mode FROM ops.schema_version ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert recorded_mode == mode
    results = pg_conn.execute(
        "SELECT check_name, table_name, region, status FROM ops.validation_results WHERE run_id = %s",
        (dr.run_id,)).fetchall()
    assert results and [r for r in results if r[3] == "fail"] == []
    assert {r[1] for r in results if r[0] == "content_checksum" and r[3] == "pass"} == {t.name for t in MIGRATABLE}
    assert _xcoms(dr, {"validate"})["validate"].failed == 0

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
    refreshed = {r.view: r.rows for r in _xcoms(dr, {"refresh_aggregates"})["refresh_aggregates"]}
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


@pytest.mark.parametrize("mode", MODES[:1])
def test_a_rerun_with_prune_tickers_ends_green_after_the_platform_removed_a_ticker(
    mode: str, airflow_db: Path, airflow_connections: dict[str, str], pg_conn: psycopg.Connection
) -> None:
    """Without prune_tickers the second run fails validation on the removed ticker; with it, it passes."""
    import sqlite3

    path = airflow_connections["sqlite_path"]
    generate(path, **CLEAN_SAMPLE)
    assert load_dag().test(run_conf={"dry_run": False}).state == "success"
    with sqlite3.connect(path) as s:
        gone = s.execute("SELECT ticker FROM tickers WHERE region = 'KR' ORDER BY ticker LIMIT 1").fetchone()[0]
        for t in MIGRATABLE:  # the platform drops the ticker and every row naming it
            columns = {r[1] for r in s.execute(f'PRAGMA table_info("{t.source}")')}
            for c in ({"ticker", "etf_ticker", "stock_ticker"} & columns):
                s.execute(f'DELETE FROM "{t.source}" WHERE "{c}" = ?', (gone,))

    kept = load_dag().test(run_conf={"dry_run": False})
    assert kept.state == "failed" and task_states(kept)["validate"][0] == "failed"
    assert task_states(kept)["prune_tickers"][0] == "skipped"

    pruned = load_dag().test(run_conf={"dry_run": False, "prune_tickers": True})
    states = task_states(pruned)
    assert pruned.state == "success", states
    assert _xcoms(pruned, {"prune_tickers"})["prune_tickers"].deleted == [(gone, "KR")]
    assert pg_conn.execute("SELECT count(*) FROM tickers WHERE ticker = %s", (gone,)).fetchone()[0] == 0


@pytest.mark.parametrize("mode", MODES[:1])
def test_a_source_in_the_bucket_is_fetched_checked_and_recorded(
    mode: str, airflow_db: Path, airflow_connections: dict[str, str], pg_conn: psycopg.Connection, tmp_path: Path
) -> None:
    """source_path s3://...: each task reads a copy fetched once per run and worker, its SHA-256 checked; a
    wrong digest or a missing object fails prepare at once, before anything is written."""
    import hashlib
    import re
    import tempfile

    import boto3

    from quantdbops.migration.source_fetch import CACHE_DIR_NAME

    local = tmp_path / "uploaded.db"
    generate(local, **CLEAN_SAMPLE)
    sha = hashlib.sha256(local.read_bytes()).hexdigest()
    s3 = boto3.client("s3", endpoint_url=airflow_connections["s3_endpoint"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="sources")
    s3.upload_file(str(local), "sources", "spock/2026-12/spock_local.db")
    uri = "s3://sources/spock/2026-12/spock_local.db"
    Path(airflow_connections["sqlite_path"]).unlink(missing_ok=True)  # the connection's file is not there

    wrong = load_dag().test(run_conf={"dry_run": False, "source_path": uri, "source_sha256": "0" * 64})
    assert wrong.state == "failed" and task_states(wrong)["prepare"] == ("failed", 1)
    missing = load_dag().test(run_conf={"dry_run": False, "source_path": "s3://sources/spock/nope.db"})
    assert missing.state == "failed" and task_states(missing)["prepare"] == ("failed", 1)
    assert _relations(pg_conn) == []  # nothing was written by either

    run_conf = {"dry_run": False, "source_path": uri, "source_sha256": sha, "tables": ["tickers", "ohlcv_data"]}
    dr = load_dag().test(run_conf=run_conf)
    assert dr.state == "success", task_states(dr)
    assert target_counts(pg_conn, OHLCV_DATA) == source_counts(local, OHLCV_DATA)
    assert pg_conn.execute("SELECT source, sha256, size_bytes, dry_run FROM ops.migration_sources "
                           "WHERE run_id = %s", (dr.run_id,)).fetchone() == (uri, sha, local.stat().st_size, False)
    run_dir = Path(tempfile.gettempdir()) / CACHE_DIR_NAME / re.sub(r"[^A-Za-z0-9_.-]", "_", dr.run_id)
    assert len([p for p in run_dir.iterdir() if p.suffix == ".db"]) == 1  # one copy for every task of the run

    # The next run reads another file: prepare names the previous run and its file.
    other = load_dag().test(run_conf={"dry_run": False, "tables": ["tickers", "ohlcv_data"]} | {
        "source_path": str(local)})
    assert other.state == "success"
    assert _xcoms(other, {"prepare"})["prepare"].previous_run == dr.run_id

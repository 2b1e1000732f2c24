"""The failed task's log, read as the on-call reads it at 3 a.m.: for each planted failure, the exception's
first line says the cause the evidence supports, "What to do" leads with the step that helps, and the
task's whole log before the traceback fits on one screen (60 lines).

The failures: a stray reject (content equal, a reject of another run in the slice), a ticker left by an
earlier load of another file, a backup whose dump lacks a table's rows, a misspelled database, a missing
bucket, and a source in the bucket that is not the file the run expects.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from quantdbops.schema.apply import apply_schema
from sample import generate
from support.alerts import log_to_this_tests_stdout, task_log
from support.backup import load_dag as load_any_dag
from support.backup import load_sample, new_bucket, s3_client
from support.migration import CLEAN_SAMPLE, load_dag, task_states

pytestmark = pytest.mark.slow
SCREEN = 60


@dataclass
class FailedLog:
    lines: list[str]  # the task's log lines, up to the traceback
    cause: str  # the exception's first line, as the closing summary repeats it
    what_to_do: str
    whole: str  # the task's whole log, the exception's other lines included

    def __str__(self) -> str:
        return "\n".join(self.lines)


def read_failure(printed: str, dag_id: str, task_id: str) -> FailedLog:
    lines = task_log(printed, task_id)
    cut = next(i for i, line in enumerate(lines)
               if line.startswith("Traceback") or "Task failed with exception" in line)
    summary = next(line for line in lines if f"FAILED {dag_id}.{task_id} (run " in line)
    what = next(line for line in lines if line.startswith("What to do: "))
    return FailedLog(lines[:cut], summary.split(": ", 1)[1].split(": ", 1)[1], what.removeprefix("What to do: "),
                     "\n".join(lines))


def _check_screen(log: FailedLog) -> None:
    assert len(log.lines) <= SCREEN, f"{len(log.lines)} lines before the traceback:\n{log}"


# --- validation: a stray reject -----------------------------------------------------------------------------
def test_a_stray_reject_is_named_with_its_run(airflow_db: Path, airflow_connections: dict[str, str],
                                              pg_conn: psycopg.Connection, capfd: pytest.CaptureFixture[str]) -> None:
    """Another job files a reject into ohlcv_data's KR slice while the load writes it: the content is equal,
    only the rejects table is off."""
    generate(airflow_connections["sqlite_path"], **CLEAN_SAMPLE)
    apply_schema(pg_conn)
    pg_conn.execute(
        "CREATE FUNCTION public.stray() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO ops.migration_rejects (run_id, table_name, region, source_rowid, reason, detail, raw_row) "
        "SELECT 'nightly-import-0417', 'ohlcv_data', 'KR', 999999, 'invalid_value', 'chk_ohlcv_prices', '{}' "
        "WHERE NOT EXISTS (SELECT 1 FROM ops.migration_rejects WHERE run_id = 'nightly-import-0417'); "
        "RETURN NULL; END $$")
    pg_conn.execute("CREATE TRIGGER stray AFTER INSERT ON ops.migration_checksums FOR EACH STATEMENT "
                    "EXECUTE FUNCTION public.stray()")
    log_to_this_tests_stdout()
    capfd.readouterr()
    dr = load_dag().test(run_conf={"dry_run": False, "tables": ["tickers", "ohlcv_data"]})
    out, _ = capfd.readouterr()
    assert task_states(dr)["validate"] == ("failed", 1)
    log = read_failure(out, "migrate_sqlite_to_postgres", "validate")
    assert log.cause.startswith("Validation failed (1 of ")
    assert "ohlcv_data KR: every row of the table's content equals the source (checksums), but " \
           "ops.migration_rejects holds 1 more rows" in log.cause
    assert "rejects of run nightly-import-0417 (1 rows, " in log.cause
    assert "UTC), not of the run that loaded" in log.cause
    assert log.what_to_do.startswith("the data is complete; remove the stale rejects: clear load_ohlcv_data")
    assert "run_id = 'nightly-import-0417'" in log.what_to_do
    assert "trigger, a rule" not in log.what_to_do  # a cause the equal checksums rule out is not offered
    _check_screen(log)


# --- validation: a leftover of another file -----------------------------------------------------------------
def test_a_ticker_left_by_another_file_is_traced_to_its_run_and_file(
        airflow_db: Path, airflow_connections: dict[str, str], pg_conn: psycopg.Connection, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "spock_2026-11.db"
    generate(first, **CLEAN_SAMPLE)
    second = tmp_path / "spock_2026-12.db"
    second.write_bytes(first.read_bytes())
    with sqlite3.connect(second) as s:  # the later file no longer has one ticker (and so none of its rows)
        gone = s.execute("SELECT ticker FROM tickers WHERE region = 'JP' ORDER BY ticker LIMIT 1").fetchone()[0]
        for table in ("ohlcv_data", "stock_details", "technical_analysis", "ticker_fundamentals", "portfolio",
                      "etf_details", "trades", "tickers"):
            s.execute(f"DELETE FROM {table} WHERE ticker = ?", (gone,))
        s.execute("DELETE FROM etf_holdings WHERE etf_ticker = ? OR stock_ticker = ?", (gone, gone))
    one = load_dag().test(run_conf={"dry_run": False, "source_path": str(first)})
    assert one.state == "success"
    log_to_this_tests_stdout()
    capfd.readouterr()
    two = load_dag().test(run_conf={"dry_run": False, "source_path": str(second)})
    out, _ = capfd.readouterr()
    assert task_states(two)["validate"] == ("failed", 1)
    prepare = "\n".join(task_log(out, "prepare"))
    assert f"Previous migration of this database: run {one.run_id}" in prepare
    assert "This run reads ANOTHER file" in prepare
    log = read_failure(out, "migrate_sqlite_to_postgres", "validate")
    assert "tickers holds 1 row(s) the source does not have, and a load never removes a row of tickers" in log.cause
    assert f"ticker={gone}, region=JP, left by run {one.run_id} at " in log.cause
    assert f"which read another file: {first}" in log.cause
    assert log.what_to_do.startswith("trigger the migration of tickers with prune_tickers: true")
    assert f"DELETE FROM public.tickers WHERE ticker = '{gone}' AND region = 'JP'" in log.what_to_do
    assert "clear load_tickers" not in log.what_to_do  # a re-load cannot remove it: not offered
    _check_screen(log)


# --- backup: the dump lacks a table's rows ------------------------------------------------------------------
@pytest.fixture
def backup_setup(airflow_db: Path, airflow_connections: dict[str, str], sample_file: Path,
                 s3_endpoint: str, tmp_path: Path) -> dict[str, Any]:
    load_sample(sample_file, airflow_connections["pg_dsn"])
    return {"bucket": new_bucket(s3_endpoint, f"oncall-{uuid.uuid4().hex[:10]}"), "endpoint": s3_endpoint}


def test_a_backup_whose_dump_lacks_rows_fails_verify_with_the_relation_and_its_kind(
        backup_setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A misconfigured client on the worker: its pg_dump leaves out the rows of tickers."""
    real = Path("/usr/lib/postgresql/15/bin")
    wrapped = tmp_path / "bin"
    wrapped.mkdir()
    (wrapped / "pg_dump").write_text(f'#!/bin/sh\nexec {real}/pg_dump "$@" --exclude-table-data=public.tickers\n')
    (wrapped / "pg_dump").chmod(0o755)
    (wrapped / "pg_restore").symlink_to(real / "pg_restore")
    monkeypatch.setenv("QUANT_PG_BIN", str(wrapped))
    log_to_this_tests_stdout()
    capfd.readouterr()
    dr = load_any_dag("postgres_backup_nightly").test(run_conf={"bucket": backup_setup["bucket"]})
    out, _ = capfd.readouterr()
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert states["dump"] == "success" and states["verify"] == "failed"
    log = read_failure(out, "postgres_backup_nightly", "verify")
    assert log.cause.startswith("verification restore differs from the manifest: public.tickers (base table): "
                                "0 rows after restore, ")
    assert "every other relation matched" in log.whole and "The scratch database " in log.whole
    assert "'latest' points at no backup yet" in log.whole  # the first night: nothing verified to fall back on
    assert log.what_to_do.startswith("fewer rows (or a relation missing) after a restore without error: the dump "
                                     "lacks that data (a pg_dump wrapper or options that exclude it")
    assert "schema change" not in log.what_to_do and "disk full" not in log.what_to_do
    _check_screen(log)


# --- deterministic errors: fail at once, with the fix ---------------------------------------------------------
def test_a_misspelled_database_and_a_missing_bucket_fail_preflight_with_the_fix(
        backup_setup: dict[str, Any], airflow_connections: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    log_to_this_tests_stdout()
    capfd.readouterr()
    dr = load_any_dag("postgres_backup_nightly").test(run_conf={"bucket": f"nowhere-{uuid.uuid4().hex[:8]}"})
    out, _ = capfd.readouterr()
    log = read_failure(out, "postgres_backup_nightly", "preflight")
    assert "does not exist" in log.cause and "not retried" in log.cause
    assert log.what_to_do.startswith("create bucket 'nowhere-")
    assert {ti.task_id: ti.try_number for ti in dr.get_task_instances()}["preflight"] == 1
    _check_screen(log)

    parts = dict(p.split("=", 1) for p in airflow_connections["pg_dsn"].split())
    monkeypatch.setenv("AIRFLOW_CONN_QUANT_POSTGRES", json.dumps({
        "conn_type": "postgres", "host": parts["host"], "port": int(parts["port"]), "login": parts["user"],
        "schema": "quant_platfrom"}))
    capfd.readouterr()
    load_any_dag("postgres_backup_nightly").test(run_conf={"bucket": backup_setup["bucket"]})
    out, _ = capfd.readouterr()
    log = read_failure(out, "postgres_backup_nightly", "preflight")
    assert "quant_platfrom" in log.cause and "does not exist" in log.cause
    assert "quant_postgres" in log.what_to_do
    _check_screen(log)


def test_a_source_in_the_bucket_that_is_not_the_expected_file(
        airflow_db: Path, airflow_connections: dict[str, str], s3_endpoint: str, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    local = tmp_path / "uploaded.db"
    generate(local, **CLEAN_SAMPLE)
    bucket = new_bucket(s3_endpoint, f"src-{uuid.uuid4().hex[:8]}")
    s3_client(s3_endpoint).upload_file(str(local), bucket, "spock/spock_local.db")
    expected = hashlib.sha256(b"the file that was meant").hexdigest()
    log_to_this_tests_stdout()
    capfd.readouterr()
    load_dag().test(run_conf={"dry_run": False, "source_path": f"s3://{bucket}/spock/spock_local.db",
                              "source_sha256": expected})
    out, _ = capfd.readouterr()
    log = read_failure(out, "migrate_sqlite_to_postgres", "prepare")
    assert log.cause.startswith(f"source s3://{bucket}/spock/spock_local.db has SHA-256 "
                                f"{hashlib.sha256(local.read_bytes()).hexdigest()}, the run expects {expected}")
    assert log.what_to_do.startswith("nothing was written. Upload the file the run means to that key")
    assert "Retries: none: this failure is deterministic" in log.whole
    _check_screen(log)
    assert os.environ  # the environment the DAG ran with stays the test's

"""Bad input is refused with a clear error before any write, and the target keeps its previous load."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from quantdbops.migration.params import MigrationRequest, ParamError
from quantdbops.migration.source import SourceError, inspect_source, open_source, require_complete
from quantdbops.registry import migratable_tables
from quantdbops.schema.apply import apply_schema
from sample import generate
from support.harness import MODES
from support.migration import CLEAN_SAMPLE, fingerprints, load, load_dag, ops_counts, task_states

pytestmark = pytest.mark.slow


def _missing(path: Path) -> None:
    path.unlink(missing_ok=True)


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _text_file(path: Path) -> None:
    path.write_text("ticker,date,close\n005930,2025-10-17,61000\n", encoding="utf-8")


def _without_etf_details(path: Path) -> None:
    generate(path, **CLEAN_SAMPLE)
    with sqlite3.connect(path) as s:
        s.execute("DROP TABLE etf_details")


def _previous_load(tmp_path: Path, dsn: str, conn: psycopg.Connection) -> tuple[dict, dict]:
    """A target already loaded once (from another file), and its fingerprints."""
    previous = tmp_path / "previous.db"
    generate(previous, **{**CLEAN_SAMPLE, "seed": CLEAN_SAMPLE["seed"] + 1})
    apply_schema(conn)
    load(previous, dsn, run_id="previous")
    return fingerprints(conn), ops_counts(conn)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        pytest.param(_missing, "does not exist", id="missing-file"),
        pytest.param(_random_bytes, "is not an SQLite database", id="random-bytes"),
        pytest.param(_without_etf_details, "missing tables: etf_details", id="missing-table"),
    ],
)
def test_bad_source_fails_prepare_and_changes_nothing(
    mode: str, airflow_db: Path, airflow_connections: dict[str, str], pg_conn: psycopg.Connection,
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    make_source: Callable[[Path], None], message: str,
) -> None:
    before, ops_before = _previous_load(tmp_path, airflow_connections["pg_dsn"], pg_conn)
    assert all(n > 0 for n, _ in before.values())
    make_source(Path(airflow_connections["sqlite_path"]))
    capfd.readouterr()

    dr = load_dag().test(run_conf={"dry_run": False})

    out, err = capfd.readouterr()
    # Where the task log goes depends on whether Airflow's logging was configured before: read both.
    logged = out + err + caplog.text
    states = task_states(dr)
    assert dr.state == "failed"
    assert states["prepare"] == ("failed", 1)  # deterministic: no retry
    assert {s for task, (s, _) in states.items() if task != "prepare"} == {"upstream_failed"}
    failure_lines = [line for line in logged.splitlines()
                     if "FAILED migrate_sqlite_to_postgres.prepare" in line]
    assert failure_lines and all(message in line for line in failure_lines), failure_lines
    assert fingerprints(pg_conn) == before
    assert ops_counts(pg_conn) == ops_before
    assert pg_conn.execute("SELECT count(*) FROM ops.migration_runs WHERE run_id = %s",
                           (dr.run_id,)).fetchone()[0] == 0


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        pytest.param(_missing, "does not exist", id="missing-file"),
        pytest.param(_random_bytes, "is not an SQLite database", id="random-bytes"),
        pytest.param(_text_file, "is not an SQLite database", id="text-file"),
        pytest.param(_without_etf_details, "missing tables: etf_details", id="missing-table"),
    ],
)
def test_bad_source_is_named_by_the_source_checks(
    tmp_path: Path, make_source: Callable[[Path], None], message: str
) -> None:
    """The checks ``prepare`` runs, directly: one SourceError that names the problem."""
    path = tmp_path / "spock_local.db"
    make_source(path)
    with pytest.raises(SourceError, match=message):
        conn = open_source(path)
        require_complete(inspect_source(conn, path, list(migratable_tables())))


@pytest.mark.parametrize("mode", MODES)
def test_unknown_region_is_refused_before_a_run_exists(
    mode: str, airflow_db: Path, airflow_connections: dict[str, str], pg_conn: psycopg.Connection
) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.sdk.exceptions import ParamValidationError

    generate(airflow_connections["sqlite_path"], **CLEAN_SAMPLE)
    dag = load_dag()
    runs_before = len(DagRun.find(dag_id=dag.dag_id))
    with pytest.raises(ParamValidationError, match="XX"):
        dag.test(run_conf={"regions": ["XX"], "dry_run": False})
    assert len(DagRun.find(dag_id=dag.dag_id)) == runs_before
    assert pg_conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE n.nspname IN ('public', 'ops')").fetchone()[0] == 0
    with pytest.raises(ParamError, match="unknown regions: XX"):
        MigrationRequest.from_params({"regions": ["XX"]})

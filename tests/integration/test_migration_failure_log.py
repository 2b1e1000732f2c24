"""A failed migration run is readable: the end of the failed task's log says what, where and what to do.

The fault is planted so that nothing is rejected and every load succeeds: a trigger on the target
changes one value of one row as it is inserted. Only the content checksum can see it, and the last
lines of ``validate``'s log must name the table, the row's key, the column and the next step.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from sample import generate
from support.alerts import log_to_this_tests_stdout, task_log
from support.harness import MODES
from support.migration import CLEAN_SAMPLE, load_dag, plant_tamper_trigger, task_states

pytestmark = pytest.mark.slow
TAIL = 15


@pytest.mark.parametrize("mode", MODES)
def test_the_last_lines_of_a_failed_validate_say_what_where_and_what_to_do(
    mode: str, airflow_db: Path, airflow_connections: dict[str, str], pg_conn: psycopg.Connection,
    capfd: pytest.CaptureFixture[str],
) -> None:
    path = airflow_connections["sqlite_path"]
    generate(path, **CLEAN_SAMPLE)
    ticker, region, day, close, low = plant_tamper_trigger(pg_conn, path)
    log_to_this_tests_stdout()
    capfd.readouterr()

    dag_run = load_dag().test(run_conf={"dry_run": False, "tables": ["tickers", "ohlcv_data"]})
    out, _ = capfd.readouterr()

    states = task_states(dag_run)
    assert states["load_tickers"][0] == states["load_ohlcv_data"][0] == "success"  # nothing was rejected
    assert states["validate"] == ("failed", 1)  # no retry
    tail = task_log(out, "validate")[-TAIL:]
    text = "\n".join(tail)
    # What failed, down to the row: the table, the month, the row's key and the column.
    assert "content_checksum ohlcv_data" in text, text
    assert f"{region} {day[:7]}" in text, text
    row = [line for line in tail if f"ticker={ticker}, region={region}, date={day}" in line]
    assert row and all(line.endswith(": close differs") for line in row), text
    assert repr(close) not in text and repr(low) not in text  # row data stays in ops.validation_results
    # Where: the DAG, the task, the run and the try.
    assert f"FAILED migrate_sqlite_to_postgres.validate (run {dag_run.run_id}, try 1 of 1)" in text, text
    # What to do: stop what changed the table, then reload it by clearing its load task and validate.
    todo = [line for line in tail if line.startswith("What to do:")]
    assert todo and all("clear load_ohlcv_data and validate" in line for line in todo), text
    assert all("load_tickers" not in line for line in todo)  # tickers are equal: nothing to reload there
    # The summary closes the log (only Airflow's own group marker follows it).
    last = [line for line in tail if "::endgroup::" not in line][-1]
    assert last.startswith("Runbook: ") and "/dags/migrate_sqlite_to_postgres" in last, text

"""A real Airflow 3, used as an operator uses it: REST API, scheduler, LocalExecutor, and the UI in Chromium.

The module starts api-server, scheduler, dag-processor and triggerer as separate processes (the code
`make airflow` runs: scripts/airflowstack.py) with a PostgreSQL metadata database and a target database
in the session's test cluster, its own Airflow home, dags/ and plugins/ of this repository. Through the
REST API it creates the pool and the connections, unpauses and triggers ``migrate_sqlite_to_postgres`` on
a generated sample, waits for the run, then reads the task logs and the scheduled DAGs' next runs. A
headless Chromium logs into the UI and looks at the run's grid and a task log, and saves screenshots.
Every process is stopped when the module ends, whatever happened.
"""

from __future__ import annotations

import re
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from airflowstack import HEAVY_DB_POOL_SLOTS, AirflowApi, AirflowStack, postgres_metadata_uri, set_up_bundle
from pgcluster import Cluster, free_port
from quantdbops import CONN_POSTGRES, CONN_S3, CONN_SQLITE, HEAVY_DB_POOL, PLATFORM_TZ
from quantdbops.migration.producer_pool import PARALLEL_MIN_ROWS, PRODUCERS_ENV
from quantdbops.registry import OHLCV_DATA, migratable_tables
from support.e2e import (
    browser_missing,
    chromium,
    cron_fires_at,
    declared_cron,
    expected_rows,
    generate_sample,
    log_in,
    next_fire,
    number,
    outcome,
    screenshot_dir,
    table_after,
    trigger_to_end,
    wait_for,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "migrate_sqlite_to_postgres"
SCHEDULED = ("postgres_backup_nightly", "data_quality_daily", "postgres_maintenance_weekly")
REGIONS = ["KR", "US"]
# 52,000 bars in KR+US: above PARALLEL_MIN_ROWS, so ohlcv_data loads through producer processes
SAMPLE_ARGS = ["--tickers-per-region", "50", "--days", "520"]
E2E_PRODUCERS = 2
RUN_DEADLINE_S = 420  # the run takes ~15-30 s here; the deadline only bounds a hung scheduler
TABLES = [t.name for t in migratable_tables()]
SKIPPED_BY_DESIGN = ("prune_tickers",)  # pruning is off unless the run asks for it


@dataclass
class Deployment:
    stack: AirflowStack
    api: AirflowApi
    sample: Path


@dataclass
class Run:
    run: dict[str, Any]
    task_instances: list[dict[str, Any]]
    logs: dict[str, list[str]]  # task_id -> log messages of its last try


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Spock SQLite file (~45 MB, 6 regions), written by the same script an operator runs."""
    return generate_sample(tmp_path_factory.mktemp("e2e-sample") / "spock_local.db", SAMPLE_ARGS)


@pytest.fixture(scope="module")
def airflow(plain_cluster: Cluster, s3_endpoint: str, sample: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Airflow running, with the pool and the three connections created through the REST API."""
    suffix = uuid.uuid4().hex[:8]
    meta_db, target_db = f"e2e_airflow_{suffix}", f"e2e_quant_{suffix}"
    plain_cluster.createdb(meta_db)
    plain_cluster.createdb(target_db)
    # Two producers whatever the default here (one on 2 cores with a local server): the spawned processes
    # under a real worker are what this module exists to show.
    stack = AirflowStack(tmp_path_factory.mktemp("airflow-e2e"),
                         postgres_metadata_uri("127.0.0.1", plain_cluster.port, meta_db), free_port(),
                         settings={PRODUCERS_ENV: str(E2E_PRODUCERS)})
    try:
        api = stack.up()
        api.set_connection(CONN_POSTGRES, {"conn_type": "postgres", "host": "127.0.0.1",
                                           "port": plain_cluster.port, "login": "postgres", "schema": target_db})
        api.set_connection(CONN_SQLITE, {"conn_type": "sqlite", "host": str(sample)})
        api.set_connection(CONN_S3, {"conn_type": "aws", "login": "testing", "password": "testing",
                                     "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}})
        yield Deployment(stack, api, sample)
    finally:
        stack.stop()
        with psycopg.connect(plain_cluster.dsn("postgres"), autocommit=True) as conn:
            for db in (meta_db, target_db):
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@pytest.fixture(scope="module")
def migration_run(airflow: Deployment) -> Run:
    """The migration, unpaused and triggered through the REST API for two regions, awaited to its end."""
    api = airflow.api
    api.wait_for_dags([DAG_ID])
    run, tis = trigger_to_end(api, airflow.stack, DAG_ID, {"regions": REGIONS, "dry_run": False}, RUN_DEADLINE_S)
    logs = {t["task_id"]: api.task_log(DAG_ID, run["dag_run_id"], t["task_id"], t["try_number"]) for t in tis}
    return Run(run, tis, logs)


@pytest.fixture(scope="module")
def expected(sample: Path) -> dict[str, dict[str, int]]:
    return expected_rows(sample, REGIONS)


# --- the deployment -------------------------------------------------------------------------------------
def test_setting_up_the_bundle_again_keeps_one_pool_with_its_slots(airflow: Deployment) -> None:
    """What a second start of `make airflow` on the same home does: the pool exists, its slots are set again."""
    airflow.api.set_pool(HEAVY_DB_POOL, 5, "changed by hand")
    changed = airflow.api.get(f"/pools/{HEAVY_DB_POOL}")
    assert (changed["slots"], changed["description"]) == (5, "changed by hand")
    set_up_bundle(airflow.api)
    pools = [p for p in airflow.api.get("/pools", limit=100)["pools"] if p["name"] == HEAVY_DB_POOL]
    assert [p["slots"] for p in pools] == [HEAVY_DB_POOL_SLOTS]


def test_the_dag_processor_parses_every_dag_file(airflow: Deployment) -> None:
    files = {p.stem for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_")}
    airflow.api.wait_for_dags(files)
    assert airflow.api.get("/importErrors")["import_errors"] == []
    assert {d["dag_id"] for d in airflow.api.get("/dags", limit=100)["dags"]} == files


# --- the migration run ------------------------------------------------------------------------------------
def test_the_run_succeeds_with_every_task(airflow: Deployment, migration_run: Run) -> None:
    run = migration_run.run
    assert run["state"] == "success"
    assert run["conf"] == {"regions": REGIONS, "dry_run": False}
    dag_tasks = {t["task_id"] for t in airflow.api.get(f"/dags/{DAG_ID}/tasks")["tasks"]}
    states = outcome(migration_run.task_instances, SKIPPED_BY_DESIGN)
    assert set(states) == dag_tasks
    # publish too (this was not a dry run); prune_tickers only runs when the run asks for it
    assert {s for t, s in states.items() if t != "prune_tickers"} == {"success"}, states
    assert {t["task_id"]: t["state"] for t in migration_run.task_instances}["prune_tickers"] == "skipped"


@pytest.mark.parametrize("table", TABLES)
def test_each_load_log_counts_the_rows_of_the_chosen_regions(
    migration_run: Run, expected: dict[str, dict[str, int]], table: str
) -> None:
    rows = table_after(migration_run.logs[f"load_{table}"], f"Loaded {table} from ")
    by_region = {r["region"]: r for r in rows}
    total = by_region.pop("TOTAL")
    assert {r: number(v["source rows"]) for r, v in by_region.items()} == expected[table]
    assert {r: number(v["loaded"]) for r, v in by_region.items()} == expected[table]
    assert {number(v["rejected"]) for v in by_region.values()} == {0}
    assert number(total["source rows"]) == number(total["loaded"]) == sum(expected[table].values())


def test_the_big_table_loads_through_producer_processes(
    migration_run: Run, expected: dict[str, dict[str, int]]
) -> None:
    """What `dag.test()` cannot show: spawned producers under a real worker, whose __main__ is the CLI."""
    assert sum(expected[OHLCV_DATA.name].values()) >= PARALLEL_MIN_ROWS, "the sample is too small for producers"
    events = migration_run.logs[f"load_{OHLCV_DATA.name}"]
    assert any(e.startswith(f"{OHLCV_DATA.name}: {E2E_PRODUCERS} producer processes over rowids") for e in events)


def test_the_summary_log_totals_every_table(migration_run: Run, expected: dict[str, dict[str, int]]) -> None:
    events = migration_run.logs["summary"]
    title = next(e for e in events if e.startswith("Migration complete:"))
    assert f"regions {','.join(REGIONS)}" in title.splitlines()[0]
    rows = {r["table"]: r for r in table_after(events, "Migration complete:")}
    total = rows.pop("TOTAL")
    sums = {t: sum(per_region.values()) for t, per_region in expected.items()}
    assert {t: number(r["source rows"]) for t, r in rows.items()} == sums
    assert {t: number(r["loaded"]) for t, r in rows.items()} == sums
    assert {number(r["rejected"]) for r in rows.values()} == {0}
    assert number(total["source rows"]) == number(total["loaded"]) == sum(sums.values())


def test_the_validate_log_passes_every_check_on_the_source_counts(
    migration_run: Run, expected: dict[str, dict[str, int]]
) -> None:
    log = migration_run.logs["validate"]
    verdict = [line for line in log if line.startswith("Validation of run ")]
    assert verdict and "checks passed" in verdict[0] and "FAILED" not in verdict[0], verdict
    rows = table_after(log, "Rows checked per table:")
    assert rows, "validate logged no table"
    want = {t: sum(per_region.values()) for t, per_region in expected.items()}
    assert {r["table"]: number(r["source rows"]) for r in rows} == want
    assert {r["table"]: number(r["loaded"]) for r in rows} == want
    assert {r["table"] for r in rows if number(r["failed"]) == 0 and number(r["rejected"]) == 0} == set(TABLES)
    assert any("FROM ops.validation_results WHERE run_id" in line for line in log)  # one query away
    # how long: the whole validation in the verdict, each table's share, each family of checks slowest first
    took = float(re.search(r"checks passed in (\d+\.\d)s$", verdict[0]).group(1))
    per_table = [float(r["seconds"]) for r in rows]
    assert min(per_table) >= 0 and sum(per_table) <= took + 0.05 * len(rows) + 0.1, (per_table, took)
    families = [line for line in log if line.startswith("Time by family of checks (slowest first): ")]
    assert len(families) == 1, families
    spent = re.findall(r"([a-z_]+) (\d+\.\d)s", families[0].split(": ", 1)[1])
    assert {name for name, _ in spent} == {"row_counts", "date_coverage", "business_rules", "referential",
                                           "features", "indexes", "sample_rows", "content_checksum"}, families
    assert [float(s) for _, s in spent] == sorted((float(s) for _, s in spent), reverse=True), families


# --- the scheduled DAGs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dag_id", SCHEDULED)
def test_the_scheduled_dag_runs_at_its_seoul_time(airflow: Deployment, dag_id: str) -> None:
    expression, tz = declared_cron(dag_id)
    assert tz == PLATFORM_TZ
    before = datetime.now(UTC)
    details = airflow.api.wait_for_dags([dag_id])[dag_id]
    after = datetime.now(UTC)
    assert details["timezone"] == tz
    assert expression in details["timetable_summary"]
    run_after = datetime.fromisoformat(details["next_dagrun_run_after"]).astimezone(ZoneInfo(tz))
    # The wall-clock time in Seoul is the cron's (a UTC reading of '0 2 * * *' would be 11:00 here).
    assert cron_fires_at(expression, run_after), f"{dag_id}: next run {run_after} does not match {expression!r}"
    # Either the next time ahead or, with catchup=False, the latest one already due; never an older one.
    assert run_after > after or next_fire(expression, run_after) > before.astimezone(ZoneInfo(tz))


# --- the UI, in a real browser -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium, logged into the Airflow UI through the login form (skipped before Airflow starts
    when the browser is missing)."""
    if reason := browser_missing():
        pytest.skip(reason)
    airflow: Deployment = request.getfixturevalue("airflow")
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        log_in(driver, airflow.stack.url, "admin", airflow.stack.password)
        yield driver


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory.mktemp("screenshots"))


def _run_url(dep: Deployment, run: Run, *tail: str) -> str:
    rid = urllib.parse.quote(run.run["dag_run_id"], safe="")
    return "/".join([dep.stack.url, "dags", DAG_ID, "runs", rid, *tail])


def test_the_grid_shows_the_run_succeeded(browser: Any, airflow: Deployment, migration_run: Run,
                                          screenshots: Path) -> None:
    from selenium.webdriver.common.by import By

    run_id = migration_run.run["dag_run_id"]
    browser.get(_run_url(airflow, migration_run))
    cells = f'[data-testid^="grid-{run_id}-"]'
    n_tasks = len(migration_run.task_instances)
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, cells)) == n_tasks, f"{n_tasks} grid cells")
    badge = wait_for(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, '[data-testid="header-card"] [data-testid="state-badge"]'), "the run's state badge")
    browser.save_screenshot(str(screenshots / "airflow-grid.png"))
    assert badge.text.strip().lower() == migration_run.run["state"] == "success"
    linked = {e.get_attribute("href").rsplit("/", 1)[-1] for e in browser.find_elements(By.CSS_SELECTOR, cells)}
    assert linked == {t["task_id"] for t in migration_run.task_instances}


def test_the_task_log_page_shows_the_summary(browser: Any, airflow: Deployment, migration_run: Run,
                                             screenshots: Path) -> None:
    from selenium.webdriver.common.by import By

    summary = next(e for e in migration_run.logs["summary"] if e.startswith("Migration complete:"))
    title = summary.splitlines()[0]
    browser.get(_run_url(airflow, migration_run, "tasks", "summary"))
    wait_for(browser, lambda d: title in d.find_element(By.TAG_NAME, "body").text, f"the log line {title!r}")
    badge = browser.find_element(By.CSS_SELECTOR, '[data-testid="header-card"] [data-testid="state-badge"]')
    browser.save_screenshot(str(screenshots / "airflow-task-log.png"))
    assert badge.text.strip().lower() == "success"
    shown = [line.split() for line in browser.find_element(By.TAG_NAME, "body").text.splitlines()]
    logged = [line.split() for line in summary.splitlines()]
    # the per-table rows (table, source rows, loaded, rejected) as the API returned them
    for table in TABLES:
        row = next(cells[:4] for cells in logged if cells[:1] == [table])
        assert row in [cells[:4] for cells in shown], f"the page does not show {row}"

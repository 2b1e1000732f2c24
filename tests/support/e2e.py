"""Helpers of the end-to-end tests: runs, log tables, expected counts, the browser."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from support import REPO
from support.dags import load_dag

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--window-size=1600,1000")
# `make screenshots` points this at docs/ to refresh the README's pictures; `make test` keeps them in a
# temporary directory so a test run never changes tracked files.
SCREENSHOT_DIR_VAR = "QUANTDBOPS_SCREENSHOT_DIR"
_DASHES = re.compile(r"-+")


# --- runs --------------------------------------------------------------------------------------------------
def now_logical_date() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def outcome(tis: Sequence[dict[str, Any]], skipped_by_design: Collection[str] = ()) -> dict[str, str]:
    """Each task's state; a task in ``skipped_by_design`` (e.g. ``prune_tickers`` when pruning is off)
    reads 'success' when it did skip."""
    return {t["task_id"]: "success" if t["task_id"] in skipped_by_design and t["state"] == "skipped"
            else t["state"] for t in tis}


def failure_report(api: Any, stack: Any, dag_id: str, run: dict[str, Any], tis: list[dict[str, Any]],
                   deadline_s: float, quiet_logs: Sequence[str] = ("scheduler",)) -> str:
    """Why a run did not succeed: task states, the log of each failed task, else the last lines of the
    components in ``quiet_logs`` (nothing failed: the run never got going, and they say why)."""
    lines = [f"{dag_id} run {run['dag_run_id']} is {run['state']!r} (waited at most {deadline_s}s, "
             "stopping at the first failed or retrying task).",
             "Task states: " + ", ".join(f"{t['task_id']}={t['state']}@{t.get('hostname') or '-'}" for t in tis)]
    bad = [t for t in tis if t["state"] in ("failed", "up_for_retry", "upstream_failed")]
    for ti in bad:
        if ti["state"] != "upstream_failed":
            log = api.task_log(dag_id, run["dag_run_id"], ti["task_id"], ti["try_number"])
            lines += [f"--- log of {ti['task_id']} (try {ti['try_number']}):", *log[-60:]]
    if not bad:
        for component in quiet_logs:
            lines += [f"--- last lines of {stack.log(component)}:", stack.tail(component, 60)]
    return "\n".join(lines)


def run_to_end(api: Any, stack: Any, dag_id: str, run: dict[str, Any], deadline_s: float,
               quiet_logs: Sequence[str] = ("scheduler",)) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Wait for a created run (stopping at the first failed or retrying task); the run and its task
    instances, or the test fails with ``failure_report``."""
    import pytest

    run = api.wait_for_run(dag_id, run["dag_run_id"], deadline_s, fail_fast=True)
    tis = api.task_instances(dag_id, run["dag_run_id"])
    if run["state"] != "success":
        pytest.fail(failure_report(api, stack, dag_id, run, tis, deadline_s, quiet_logs))
    return run, tis


def trigger_to_end(api: Any, stack: Any, dag_id: str, conf: Mapping[str, Any], deadline_s: float,
                   quiet_logs: Sequence[str] = ("scheduler",)) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Unpause, trigger now with ``conf`` and wait (``run_to_end``)."""
    created = api.trigger(dag_id, conf, now_logical_date())
    return run_to_end(api, stack, dag_id, created, deadline_s, quiet_logs)


# --- the log tables (quantdbops.report.format_table) --------------------------------------------------
def parse_table(event: str) -> list[dict[str, str]]:
    """Rows of the fixed-width table in one log message, as {header: cell}; [] when it holds none.

    The dashes line under the headers gives each column's start; a cell runs to the next column's start.
    """
    lines = event.splitlines()
    for i in range(1, len(lines)):
        if lines[i] and set(lines[i]) <= {"-", " "} and "-" in lines[i]:
            starts = [m.start() for m in _DASHES.finditer(lines[i])]
            bounds = list(zip(starts, [*starts[1:], None], strict=True))
            headers = [lines[i - 1][a:b].strip() for a, b in bounds]
            return [{h: row[a:b].strip() for h, (a, b) in zip(headers, bounds, strict=True)}
                    for row in lines[i + 1:] if row.strip()]
    return []


def table_after(events: Sequence[str], prefix: str) -> list[dict[str, str]]:
    """The table of the first log message that starts with ``prefix``."""
    for event in events:
        if event.startswith(prefix):
            return parse_table(event)
    raise AssertionError(f"no log message starts with {prefix!r}; messages: {[e[:80] for e in events]}")


def number(cell: str) -> int:
    return int(cell.replace(",", ""))


# --- what the source holds --------------------------------------------------------------------------------
def generate_sample(out: Path, args: Sequence[str]) -> Path:
    """A Spock SQLite file written by the same script an operator runs (scripts/generate_sample.py)."""
    import subprocess

    res = subprocess.run([sys.executable, str(REPO / "scripts" / "generate_sample.py"), "--out", str(out), *args],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, f"generate_sample.py failed:\n{res.stdout}\n{res.stderr}"
    return out


def expected_rows(sample: Path, regions: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per target table, source rows per region ('ALL' for market-wide tables) for the chosen regions."""
    # The source-side counts of the migration tests' own SQL (independent of the loader).
    from support.migration import MIGRATABLE, source_counts

    return {t.name: {str(r): n for r, n in source_counts(sample, t, regions=regions).items()} for t in MIGRATABLE}


# --- the scheduled DAGs -------------------------------------------------------------------------------------
def declared_cron(dag_id: str) -> tuple[str, str]:
    """(cron expression, timezone name) the DAG file declares, read from the DAG object it builds."""
    timetable = load_dag(dag_id).timetable
    cron = getattr(timetable, "timetable", timetable)  # AssetOrTimeSchedule wraps the cron timetable
    expression = getattr(cron, "expression", None) or cron._expression
    tz = getattr(cron, "timezone", None) or cron._timezone
    return expression, str(getattr(tz, "name", tz))


def cron_fires_at(expression: str, when: datetime) -> bool:
    from croniter import croniter

    return bool(croniter.match(expression, when))


def next_fire(expression: str, after: datetime) -> datetime:
    from croniter import croniter

    return croniter(expression, after).get_next(datetime)


# --- the browser ------------------------------------------------------------------------------------------
def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return (f"headless Chromium is not installed ({', '.join(missing)} missing): apt-get install chromium "
                "chromium-driver (`make test` installs them when run as root)")
    return None


@contextmanager
def chromium(user_data_dir: Path) -> Iterator[Any]:
    """Debian's headless Chromium driven by Debian's ChromeDriver through selenium; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(driver: Any, url: str, username: str, password: str) -> None:
    """Fill the simple auth manager's login form, as a person does; wait until it lets us in."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/")
    wait = WebDriverWait(driver, 60)
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "/auth/login" not in d.current_url)


def wait_for(driver: Any, condition: Any, what: str, timeout: float = 60) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException as exc:
        raise AssertionError(f"the page at {driver.current_url} never showed {what}") from exc


def screenshot_dir(default: Path) -> Path:
    target = Path(os.environ.get(SCREENSHOT_DIR_VAR) or default)
    if not target.is_absolute():
        target = REPO / target
    target.mkdir(parents=True, exist_ok=True)
    return target

"""What every DAG of the bundle shares: its header, the default args, the tag vocabulary, the failure alerts.

A DAG file states only what is its own through ``quant_dag``: its family, schedule, runbook and params;
owner, start date, time zone, catch-up, one run at a time, tags and both failure alerts come from here.
A test holds every DAG file to this policy. Every task's ``on_failure_callback`` is a ``TaskFailureAlert``
and every DAG's a ``RunFailureAlert`` (``quantdbops.notifiers``): they alert the channel of connection
``quant_alerts`` when it exists, and always end the failed task's log with what failed, where and what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, dag

from quantdbops import PLATFORM_TZ
from quantdbops.notifiers import CONN_ALERTS, RunFailureAlert, TaskFailureAlert

OWNER = "data-platform"
START_DATE = pendulum.datetime(2025, 1, 1, tz=PLATFORM_TZ)
# Tags: the bundle, one family, and whether a person or the scheduler starts the runs.
FAMILIES = ("migration", "backup", "restore", "data-quality", "maintenance")
TAGS = frozenset({"quant-db-ops", *FAMILIES, "manual", "scheduled"})


def failure_alert(conn_id: str = CONN_ALERTS) -> TaskFailureAlert:
    """A task's failure callback: the alert, and the task log's last lines (what, where, what to do)."""
    return TaskFailureAlert(conn_id)


def run_failure_alert(conn_id: str = CONN_ALERTS) -> RunFailureAlert:
    """A DAG's ``on_failure_callback``: alerts when a run fails without a task failing (timeout, deadlock)."""
    return RunFailureAlert(conn_id)


# A task failure callback for code that calls one directly with a context.
notify_failure = failure_alert()


def default_args(**overrides: Any) -> dict[str, Any]:
    """Owner, retries with back-off, a timeout and the failure callback; DAGs override what differs."""
    args: dict[str, Any] = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": failure_alert(),
    }
    args.update(overrides)
    return args


def cron(expression: str) -> CronTriggerTimetable:
    """A schedule at wall-clock times of the platform's time zone (the markets' day, not UTC's)."""
    return CronTriggerTimetable(expression, timezone=PLATFORM_TZ)


def quant_dag(family: str, *, doc_md: str | None, params: dict[str, Any], schedule: Any = None,
              **task_defaults: Any) -> Callable[[Callable[..., None]], Callable[..., Any]]:
    """``@dag`` with the bundle's header; the DAG id is the decorated function's name (the file's name).

    ``schedule=None`` makes a manual DAG; ``task_defaults`` override ``default_args`` (a longer
    ``execution_timeout``, fewer ``retries``)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown DAG family {family!r}; one of {', '.join(FAMILIES)}")
    return dag(
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        doc_md=doc_md,
        params=params,
        default_args=default_args(**task_defaults),
        on_failure_callback=run_failure_alert(),
        tags=["quant-db-ops", family, "manual" if schedule is None else "scheduled"],
    )


__all__ = [
    "FAMILIES", "OWNER", "PLATFORM_TZ", "START_DATE", "TAGS", "cron", "default_args", "failure_alert",
    "notify_failure", "quant_dag", "run_failure_alert",
]

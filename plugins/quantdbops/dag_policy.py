"""What every DAG of the bundle shares: default args, the closed tag vocabulary, the failure alerts.

A test holds every DAG file to this policy (owner, retries, doc_md, tags from ``TAGS``, both alerts).
Every task's ``on_failure_callback`` is a ``TaskFailureAlert`` and every DAG's is a ``RunFailureAlert``
(``quantdbops.notifiers``): they alert the channel of connection ``quant_alerts`` (a webhook or SMTP)
when it exists, and always end the failed task's log with what failed, where and what to do.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from quantdbops import PLATFORM_TZ
from quantdbops.notifiers import CONN_ALERTS, RunFailureAlert, TaskFailureAlert

TAGS = frozenset({
    "quant-db-ops", "migration", "backup", "restore", "data-quality", "maintenance", "manual", "scheduled",
})
OWNER = "data-platform"
START_DATE = datetime(2025, 1, 1)  # naive: read in the default time zone (Asia/Seoul)


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


__all__ = [
    "OWNER", "PLATFORM_TZ", "START_DATE", "TAGS", "default_args", "failure_alert", "notify_failure",
    "run_failure_alert",
]

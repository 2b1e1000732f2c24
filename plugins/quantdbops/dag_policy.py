"""What every DAG of the bundle shares: default args, the closed tag vocabulary, the failure callback.

A test holds every DAG file to this policy (owner, retries, doc_md, tags from ``TAGS``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from quantdbops import PLATFORM_TZ

TAGS = frozenset({
    "quant-db-ops", "migration", "backup", "restore", "data-quality", "maintenance", "manual", "scheduled",
})
OWNER = "data-platform"
START_DATE = datetime(2025, 1, 1)  # naive: read in the default time zone (Asia/Seoul)
log = logging.getLogger(__name__)


def notify_failure(context: dict[str, Any]) -> None:
    """Say what failed, where, and where to look: the on-call's first line in the log and the alert."""
    ti = context.get("task_instance") or context.get("ti")
    exc = context.get("exception")
    where = f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')} (run {context.get('run_id', '?')}, " \
            f"try {getattr(ti, 'try_number', '?')})"
    log.error("FAILED %s: %s. The task log above says what to do next; the DAG's Docs tab is the runbook.",
              where, exc)


def default_args(**overrides: Any) -> dict[str, Any]:
    """Owner, retries with back-off, a timeout and the failure callback; DAGs override what differs."""
    args: dict[str, Any] = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": notify_failure,
    }
    args.update(overrides)
    return args


__all__ = ["OWNER", "PLATFORM_TZ", "START_DATE", "TAGS", "default_args", "notify_failure"]

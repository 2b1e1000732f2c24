"""What a failure alert says, built from an Airflow callback context (no I/O here).

One ``FailureReport`` per alert: what failed, where (DAG, task, run, try, host), the exception's first
line, what to do next and where to read more. It renders as plain text (the log line, the mail, Slack's
``text``) and as a JSON body for generic webhooks.
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from quantdbops.errors import what_to_do_of

DEFAULT_BASE_URL = "http://localhost:8080/"
# A run that fails without a task failing first: what the on-call does about it.
RUN_FAILURE_HINTS = {
    "timed_out": "the run passed its dagrun_timeout: the grid shows which tasks were still running; find "
                 "what made them slow (locks, load), then clear them or trigger again",
    "all_tasks_deadlocked": "no task could start (their dependencies can never be met): the grid shows "
                            "the blocked tasks; clear them with their upstream tasks or trigger again",
}


def base_url() -> str:
    """The Airflow UI's address (``[api] base_url``), as the task log links use it."""
    from airflow.sdk.configuration import conf

    return conf.get("api", "base_url", fallback=DEFAULT_BASE_URL).rstrip("/")


def first_line(exc: object) -> str:
    """``Type: first line of the message``; a string (a killed task's reason) as it is."""
    if exc is None:
        return "no exception was recorded (the task was killed, timed out or lost its worker)"
    text = getattr(exc, "message", None) if isinstance(exc, BaseException) else None
    text = str(text if isinstance(text, str) else exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line}" if isinstance(exc, BaseException) else line


@dataclass(frozen=True)
class FailureReport:
    """One failure, as the on-call reads it."""

    event: str  # task_failed | run_failed
    dag_id: str
    task_id: str | None
    run_id: str
    try_number: int | None
    max_tries: int | None
    logical_date: str | None
    host: str
    exception: str
    what_to_do: str
    log_url: str
    runbook_url: str
    reason: str | None = None  # a run's failure reason (task_failure, timed_out, all_tasks_deadlocked)
    retries: str | None = None  # why no retry follows this failure

    @property
    def where(self) -> str:
        tries = f", try {self.try_number}" if self.try_number is not None else ""
        if tries and self.max_tries is not None:
            tries += f" of {self.max_tries + 1}"
        return f"(run {self.run_id}{tries}) on host {self.host}"

    @property
    def headline(self) -> str:
        if self.event == "task_failed":
            return f"FAILED {self.dag_id}.{self.task_id} {self.where}"
        return f"RUN FAILED {self.dag_id} {self.where}: {self.reason or 'failed'}"

    @property
    def subject(self) -> str:
        what = f"{self.dag_id}.{self.task_id}" if self.task_id and self.event == "task_failed" else self.dag_id
        return f"[quant-db-ops] FAILED {what} (run {self.run_id})"

    def text(self) -> str:
        lines = [f"{self.headline}: {self.exception}" if self.event == "task_failed" else self.headline]
        if self.event != "task_failed":
            lines.append(f"Error: {self.exception}")
        if self.retries:
            lines.append(f"Retries: {self.retries}")
        lines += [
            f"What to do: {self.what_to_do}",
            f"Logical date: {self.logical_date or '-'}",
            f"Log: {self.log_url}",
            f"Runbook: {self.runbook_url} (the DAG's Docs tab)",
        ]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        """The generic webhook body: every field, plus ``text`` so Slack-like receivers show something."""
        return {**asdict(self), "text": self.text()}


def _ti_fields(ti: Any) -> dict[str, Any]:
    return {
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
        "max_tries": getattr(ti, "max_tries", None),
        "host": getattr(ti, "hostname", None),
    }


def _iso(value: object) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value else None)


def retries_note(exc: object, try_number: int | None, max_tries: int | None) -> str | None:
    """Why no retry follows a task's final failure: it was deterministic, or the last try was used."""
    from airflow.sdk.exceptions import AirflowFailException

    if try_number is None or max_tries is None:
        return None
    allowed = max_tries + 1
    if isinstance(exc, AirflowFailException) and try_number < allowed:
        return (f"none: this failure is deterministic (a retry would meet it again), so try {try_number} of "
                f"{allowed} is the last; the task is failed and alerted once")
    if try_number >= allowed:
        return (f"none left: try {try_number} of {allowed} failed" if allowed > 1 else
                "none configured for this task (a retry could not change its outcome)")
    return f"none: Airflow marked the task failed on try {try_number} of {allowed} (killed, timed out or lost)"


def report_from_context(context: Any, *, event: str = "task_failed") -> FailureReport:
    """A report from a task's ``on_failure_callback`` context, or a DAG run's (``event='run_failed'``)."""
    ti = context.get("task_instance") or context.get("ti")
    f = _ti_fields(ti)
    dag = context.get("dag")
    dag_id = f["dag_id"] or getattr(dag, "dag_id", None) or "?"
    run_id = context.get("run_id") or getattr(ti, "run_id", None) or "?"
    exc = context.get("exception")
    base = base_url()
    runbook = f"{base}/dags/{quote(dag_id)}"
    run_url = f"{runbook}/runs/{quote(run_id)}"
    if event == "task_failed":
        log_url = getattr(ti, "log_url", None) or f"{run_url}/tasks/{quote(f['task_id'] or '')}"
        hint = what_to_do_of(exc, context.get("task") or getattr(ti, "task", None))
        exception = first_line(exc)
    else:
        log_url = run_url
        hint = RUN_FAILURE_HINTS.get(context.get("reason") or "")
        last = f" (last task to end: {f['task_id']})" if f["task_id"] else ""
        exception = f"the run ended {context.get('reason') or 'failed'}{last}"
    return FailureReport(
        event=event,
        dag_id=dag_id,
        task_id=f["task_id"],
        run_id=run_id,
        try_number=f["try_number"] if event == "task_failed" else None,
        max_tries=f["max_tries"] if event == "task_failed" else None,
        logical_date=_iso(context.get("logical_date")),
        host=f["host"] or socket.gethostname(),
        exception=exception,
        what_to_do=hint or f"read the log ({log_url}); the DAG's Docs tab is the runbook: {runbook}",
        log_url=log_url,
        runbook_url=runbook,
        reason=context.get("reason"),
        retries=retries_note(exc, f["try_number"], f["max_tries"]) if event == "task_failed" else None,
    )


__all__ = ["FailureReport", "base_url", "first_line", "report_from_context"]

"""The failure notifiers every DAG of the bundle uses (Airflow 3's ``BaseNotifier``).

``TaskFailureAlert`` is every task's ``on_failure_callback`` (through ``dag_policy.default_args``): it
runs in the task's own process once the task has failed for good, sends the alert, and writes the
failure summary as the last lines of the task log. ``RunFailureAlert`` is every DAG's
``on_failure_callback``: it alerts only when a run fails without a task failing first (the run timed
out, or no task could start); after a task failure it logs one line, since the task already alerted.

No alert channel, a misconfigured one or a dead one never raises: the task has failed already and that
is what the log must show. Each case is one log line that says so.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk import BaseNotifier

from quantdbops.notifiers.message import FailureReport, report_from_context

CONN_ALERTS = "quant_alerts"
log = logging.getLogger("quantdbops.alerts")


def deliver(report: FailureReport, conn_id: str = CONN_ALERTS) -> bool:
    """Send ``report`` through the channel of connection ``conn_id``; log what happened; never raise."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from quantdbops.notifiers.channels import ChannelConfigError, DeliveryError, channel_from_connection

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.warning("No alert channel configured: connection %r is not defined, so this failure is reported "
                    "in the log only (README, section Alerts, shows how to add a webhook or e-mail).", conn_id)
        return False
    try:
        channel = channel_from_connection(conn)
    except ChannelConfigError as exc:
        log.error("Alert NOT sent: connection %r is not a usable alert channel: %s. Fix the connection; "
                  "the failure is in this log.", conn_id, exc)
        return False
    started = time.monotonic()
    try:
        outcome = channel.send(report)
    except DeliveryError as exc:
        log.error("Alert NOT delivered by %s (connection %r) after %d attempt(s) in %.1f s: %s. The channel "
                  "is down or refuses it; the failure is in this log.", channel.describe(), conn_id,
                  exc.attempts, time.monotonic() - started, exc)
        return False
    except Exception as exc:  # the provider's notifier failed in a way no channel rule names: still only a log line
        log.error("Alert NOT delivered by %s (connection %r) in %.1f s: unexpected %s: %s. The failure is in "
                  "this log.", channel.describe(), conn_id, time.monotonic() - started, type(exc).__name__, exc)
        return False
    log.info("Alert sent by %s (connection %r): %s, %.2f s.", channel.describe(), conn_id, outcome,
             time.monotonic() - started)
    return True


class _AlertNotifier(BaseNotifier):
    """What both alerts share: the connection id; nothing to template."""

    def __init__(self, conn_id: str = CONN_ALERTS) -> None:
        super().__init__()
        self.conn_id = conn_id

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # No template fields. Skipping the render also spares dag.test(), whose DAG-level callbacks get a
        # SerializedDAG without a template environment (BaseNotifier's render fails on it).
        if self.template_fields:
            super().render_template_fields(context, jinja_env)


class TaskFailureAlert(_AlertNotifier):
    """A task failed for good: alert the channel of ``conn_id``, then end the task log with the summary."""

    def notify(self, context: Any) -> None:
        report = report_from_context(context, event="task_failed")
        try:
            deliver(report, self.conn_id)
        finally:
            # The task log's last lines: what failed, where, what to do (kept even if delivery broke).
            log.error("%s", report.text())


class RunFailureAlert(_AlertNotifier):
    """A DAG run failed: alert unless a task's failure alert already covered it."""

    def notify(self, context: Any) -> None:
        report = report_from_context(context, event="run_failed")
        if report.reason == "task_failure":
            log.info("Run %s of %s failed because a task failed; that task's alert was sent from its own "
                     "log, so no second alert.", report.run_id, report.dag_id)
            return
        deliver(report, self.conn_id)
        log.error("%s", report.text())


__all__ = ["CONN_ALERTS", "RunFailureAlert", "TaskFailureAlert", "deliver"]

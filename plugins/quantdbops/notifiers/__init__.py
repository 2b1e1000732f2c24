"""Failure alerts: what failed, where, and what to do, to a webhook or by e-mail.

- ``message``: the report built from a callback context, and its text and JSON forms (no I/O);
- ``channels``: the webhook and SMTP channels an Airflow connection describes, sent by the providers'
  ``HttpNotifier`` and ``SmtpNotifier`` with bounded retries (tenacity);
- ``failure``: the ``BaseNotifier`` callbacks wired into every DAG by ``quantdbops.dag_policy``.
"""

from __future__ import annotations

from quantdbops.notifiers.failure import CONN_ALERTS, RunFailureAlert, TaskFailureAlert, deliver

__all__ = ["CONN_ALERTS", "RunFailureAlert", "TaskFailureAlert", "deliver"]

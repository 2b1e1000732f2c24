"""Failure alerts end to end: a real task fails in ``dag.test()``, real receivers on loopback get the alert.

The failing task is the migration DAG's ``prepare`` on a source file that does not exist (a
deterministic failure with the operator's own "what to do"); the connection ``quant_alerts`` comes from
``AIRFLOW_CONN_QUANT_ALERTS`` as a deployment would set it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pgcluster import free_port
from quantdbops.notifiers import deliver
from quantdbops.notifiers.message import FailureReport
from quantdbops.operators.migration import SOURCE_WHAT_TO_DO
from support.alerts import (
    ALERTS_ENV,
    fail_prepare,
    mail_receiver,
    self_signed_cert,
    task_log,
    webhook_receiver,
)
from support.migration import load_dag, task_states

pytestmark = pytest.mark.slow
DAG_ID = "migrate_sqlite_to_postgres"
FAST_RETRY = {"attempts": 3, "retry_delay": 0.05, "timeout": 5}


def _webhook_conn(url: str, **extra: object) -> str:
    return json.dumps({"conn_type": "http", "extra": {"url": url, **FAST_RETRY, **extra}})


def _assert_prepare_failed_alone(dag_run: object) -> None:
    states = task_states(dag_run)
    assert dag_run.state == "failed"  # type: ignore[attr-defined]
    assert states["prepare"] == ("failed", 1)  # the alert changed nothing: failed once, no retry
    assert {s for task, (s, _) in states.items() if task != "prepare"} == {"upstream_failed"}


def test_webhook_gets_the_failed_task_with_what_to_do(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with webhook_receiver() as hook:
        monkeypatch.setenv(ALERTS_ENV, _webhook_conn(f"{hook.url}/alerts"))
        dag_run, missing = fail_prepare(tmp_path)

    _assert_prepare_failed_alone(dag_run)
    # One alert: the task's. The run's own failure callback does not repeat it.
    assert [p.path for p in hook.posts] == ["/alerts"]
    post = hook.posts[0]
    assert post.content_type == "application/json"
    body = post.body
    assert (body["event"], body["dag_id"], body["task_id"], body["run_id"]) == \
        ("task_failed", DAG_ID, "prepare", dag_run.run_id)
    retries = load_dag().get_task("prepare").retries
    assert (body["try_number"], body["max_tries"]) == (1, retries)  # failed at once: a retry cannot help
    assert body["host"]
    assert body["logical_date"] == dag_run.logical_date.isoformat()
    assert body["exception"].startswith("ActionableFailure: ")
    assert str(missing) in body["exception"] and "does not exist" in body["exception"]
    assert body["what_to_do"] == SOURCE_WHAT_TO_DO
    assert body["log_url"].endswith(f"/dags/{DAG_ID}/runs/{dag_run.run_id.replace(':', '%3A').replace('+', '%2B')}"
                                    "/tasks/prepare?try_number=1")
    assert body["runbook_url"].endswith(f"/dags/{DAG_ID}")
    text = body["text"].splitlines()
    assert text[0].startswith(f"FAILED {DAG_ID}.prepare (run {dag_run.run_id}, try 1 of {retries + 1}) "
                              f"on host {body['host']}: ")
    assert f"What to do: {SOURCE_WHAT_TO_DO}" in text


def test_slack_format_posts_only_text_to_the_uri_path(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URI form of the connection (path and format in the URI), as Slack's incoming webhooks take it."""
    with webhook_receiver() as hook:
        monkeypatch.setenv(ALERTS_ENV, f"http://127.0.0.1:{hook.port}/services/T0/B0/secret?format=slack"
                                       "&retry_delay=0.05")
        dag_run, missing = fail_prepare(tmp_path)

    _assert_prepare_failed_alone(dag_run)
    assert [(p.path, set(p.body)) for p in hook.posts] == [("/services/T0/B0/secret", {"text"})]
    text = hook.posts[0].body["text"]
    assert f"FAILED {DAG_ID}.prepare (run {dag_run.run_id}" in text
    assert str(missing) in text
    assert f"What to do: {SOURCE_WHAT_TO_DO}" in text


def test_email_over_starttls_with_login(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the receiver's certificate
    with mail_receiver(tls=(cert, key), credentials=("alerts", "s3cret-pw")) as smtp:
        monkeypatch.setenv(ALERTS_ENV, json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port, "login": "alerts",
            "password": "s3cret-pw",
            "extra": {"from": "airflow@quant.example", "to": "oncall@quant.example, dba@quant.example",
                      "starttls": True, **FAST_RETRY},
        }))
        dag_run, missing = fail_prepare(tmp_path)

    _assert_prepare_failed_alone(dag_run)
    assert smtp.logins == [("alerts", True)]
    assert len(smtp.mails) == 1
    mail = smtp.mails[0]
    assert (mail.tls, mail.login) == (True, "alerts")
    assert mail.mail_from == "airflow@quant.example"
    assert mail.rcpt_tos == ["oncall@quant.example", "dba@quant.example"]
    assert mail.message["Subject"] == f"[quant-db-ops] FAILED {DAG_ID}.prepare (run {dag_run.run_id})"
    body = mail.text
    assert str(missing) in body
    assert f"What to do: {SOURCE_WHAT_TO_DO}" in body


def test_a_busy_webhook_is_retried_until_it_takes_the_alert(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    with webhook_receiver(statuses=[503, 503]) as hook:
        monkeypatch.setenv(ALERTS_ENV, _webhook_conn(hook.url))
        dag_run, _ = fail_prepare(tmp_path)
    out, _ = capfd.readouterr()

    _assert_prepare_failed_alone(dag_run)
    assert len(hook.posts) == 3  # two refusals, then delivered
    assert hook.posts[0].body == hook.posts[2].body  # the same alert each time
    sent = [line for line in task_log(out, "prepare") if "Alert sent by webhook" in line]
    assert sent and all("3 attempt(s)" in line for line in sent), sent


@pytest.mark.parametrize("receiver_status", [
    pytest.param(None, id="nothing-listening"),
    pytest.param(500, id="http-500-every-time"),
])
def test_a_dead_webhook_is_logged_and_the_task_fails_as_it_would(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str], receiver_status: int | None,
) -> None:
    with webhook_receiver(statuses=[receiver_status] * 10 if receiver_status else []) as hook:
        url = hook.url if receiver_status else f"http://127.0.0.1:{free_port()}"
        monkeypatch.setenv(ALERTS_ENV, _webhook_conn(url))
        dag_run, _ = fail_prepare(tmp_path)
    out, _ = capfd.readouterr()

    _assert_prepare_failed_alone(dag_run)
    assert len(hook.posts) == (FAST_RETRY["attempts"] if receiver_status else 0)  # bounded retries
    lines = task_log(out, "prepare")
    not_delivered = [line for line in lines if "Alert NOT delivered by webhook" in line]
    assert len(not_delivered) == 1, lines[-20:]
    assert f"after {FAST_RETRY['attempts']} attempt(s)" in not_delivered[0]
    assert str(receiver_status or "Connection refused") in not_delivered[0]
    # The failure itself is still the end of the task log.
    assert any(line.startswith(f"What to do: {SOURCE_WHAT_TO_DO}") for line in lines[-8:]), lines[-8:]
    assert not [line for line in lines if "Failed to run task callback" in line]


def test_without_a_connection_one_line_says_so(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(ALERTS_ENV, raising=False)
    dag_run, missing = fail_prepare(tmp_path)
    out, _ = capfd.readouterr()

    _assert_prepare_failed_alone(dag_run)
    lines = task_log(out, "prepare")
    assert len([line for line in lines if "No alert channel configured" in line]) == 1
    assert not [line for line in lines if "Failed to run task callback" in line or "Alert NOT" in line]
    failed = [line for line in lines if f"FAILED {DAG_ID}.prepare" in line]
    assert len(failed) == 1 and str(missing) in failed[0]


def test_a_run_failing_without_a_task_failure_alerts_once(
    airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DAG's own callback, called as the dag-processor calls it for a run that timed out."""
    dag = load_dag()
    callbacks = dag.on_failure_callback if isinstance(dag.on_failure_callback, list) else [dag.on_failure_callback]
    with webhook_receiver() as hook:
        monkeypatch.setenv(ALERTS_ENV, _webhook_conn(hook.url))
        for callback in callbacks:
            callback({"dag": dag, "run_id": "scheduled__2026-01-01T00:00:00+00:00", "reason": "timed_out"})
            callback({"dag": dag, "run_id": "scheduled__2026-01-02T00:00:00+00:00", "reason": "task_failure"})

    assert len(hook.posts) == 1  # the task failure was alerted by the task itself
    body = hook.posts[0].body
    assert (body["event"], body["dag_id"], body["task_id"], body["reason"]) == \
        ("run_failed", DAG_ID, None, "timed_out")
    assert body["run_id"] == "scheduled__2026-01-01T00:00:00+00:00"
    assert "dagrun_timeout" in body["what_to_do"]
    assert body["text"].startswith(f"RUN FAILED {DAG_ID} (run scheduled__2026-01-01T00:00:00+00:00)")


def _report() -> FailureReport:
    return FailureReport(
        event="task_failed", dag_id=DAG_ID, task_id="prepare", run_id="manual__probe", try_number=1, max_tries=0,
        logical_date=None, host="probe-host", exception="ActionableFailure: probe", what_to_do="read the probe",
        log_url="http://localhost:8080/probe", runbook_url=f"http://localhost:8080/dags/{DAG_ID}")


@pytest.mark.parametrize(("case", "attempts", "logged"), [
    pytest.param("untrusted-certificate", 1, "TLS certificate is not trusted", id="untrusted-certificate"),
    pytest.param("wrong-password", 1, "SMTP login refused (535)", id="wrong-password"),
    pytest.param("nothing-listening", FAST_RETRY["attempts"], "Connection refused", id="nothing-listening"),
])
def test_an_smtp_channel_that_refuses_is_logged_and_retried_only_when_it_may_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    case: str, attempts: int, logged: str,
) -> None:
    cert, key = self_signed_cert(tmp_path)
    if case != "untrusted-certificate":
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with mail_receiver(tls=(cert, key), credentials=("alerts", "right-password")) as smtp:
        port = free_port() if case == "nothing-listening" else smtp.port
        monkeypatch.setenv(ALERTS_ENV, json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "alerts",
            "password": "wrong-password" if case == "wrong-password" else "right-password",
            "extra": {"to": "oncall@quant.example", "starttls": True, **FAST_RETRY}}))
        with caplog.at_level(logging.INFO, logger="quantdbops.alerts"):
            assert deliver(_report()) is False  # returns, never raises

    assert smtp.mails == []
    lines = [r.getMessage() for r in caplog.records if r.name == "quantdbops.alerts"]
    assert len(lines) == 1 and lines[0].startswith("Alert NOT delivered by e-mail via 127.0.0.1"), lines
    assert f"after {attempts} attempt(s)" in lines[0] and logged in lines[0], lines[0]
    assert "right-password" not in lines[0] and "wrong-password" not in lines[0]


def test_a_refusing_webhook_is_not_retried_and_only_our_settings_reach_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """HTTP 404 is final at once; the connection's extras (format, attempts, ...) are ours, never request headers."""
    with webhook_receiver(statuses=[404] * 5) as hook:
        monkeypatch.setenv(ALERTS_ENV, _webhook_conn(f"{hook.url}/hooks/s3cret-token", format="json"))
        with caplog.at_level(logging.INFO, logger="quantdbops.alerts"):
            assert deliver(_report()) is False

    assert len(hook.posts) == 1
    headers = hook.posts[0].headers
    assert headers["user-agent"] == "quant-db-ops-alerts"
    assert not {"format", "attempts", "retry_delay", "timeout", "url"} & set(headers), headers
    lines = [r.getMessage() for r in caplog.records if r.name == "quantdbops.alerts"]
    assert len(lines) == 1 and "after 1 attempt(s)" in lines[0] and "HTTP 404 Not Found" in lines[0], lines


def test_a_webhooks_path_is_never_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    """A webhook's path is its secret: neither our lines nor the HTTP provider's name it, refused or not (the
    provider's hook logs through structlog, straight to the output, hence ``capfd`` too)."""
    secret = "/services/T0/B0/s3cret-token"
    with webhook_receiver(statuses=[503]) as hook:
        for url in (f"http://127.0.0.1:{free_port()}{secret}", f"{hook.url}{secret}"):
            monkeypatch.setenv(ALERTS_ENV, _webhook_conn(url))
            with caplog.at_level(logging.INFO):
                deliver(_report())

    assert [p.path for p in hook.posts] == [secret, secret]  # refused once (503), then delivered
    said = [r.getMessage() for r in caplog.records]
    assert any("Alert NOT delivered by webhook" in m for m in said) and any("Alert sent by webhook" in m for m in said)
    printed = capfd.readouterr()
    assert not [m for m in said if "s3cret-token" in m]
    assert "s3cret-token" not in printed.out + printed.err

"""The plain logic of the failure alerts: channels from connections, bounded retries, the report, the
validation verdict. Delivery to real receivers is tested in ``tests/integration/test_alerts.py``.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowFailException

from quantdbops.errors import ActionableFailure, what_to_do_of
from quantdbops.migration import verdict
from quantdbops.migration.validate import CheckResult
from quantdbops.notifiers.channels import (
    ChannelConfigError,
    DeliveryError,
    Email,
    Retry,
    Webhook,
    _Retryable,
    channel_from_connection,
)
from quantdbops.notifiers.message import first_line, report_from_context


def _uri(uri: str) -> Connection:
    return Connection.from_uri(uri, conn_id="quant_alerts")


def _json(**fields: object) -> Connection:
    return Connection.from_json(json.dumps(fields), conn_id="quant_alerts")


@pytest.mark.parametrize(("conn", "url", "fmt"), [
    pytest.param(_uri("http://127.0.0.1:8080/hooks/a"), "http://127.0.0.1:8080/hooks/a", "json", id="uri-path"),
    pytest.param(_uri("https://hooks.slack.com/services/T0/B0/x?format=slack"),
                 "https://hooks.slack.com/services/T0/B0/x", "slack", id="uri-https-slack"),
    pytest.param(_json(conn_type="http", host="https://alerts.example", extra={"endpoint": "/v1/alert"}),
                 "https://alerts.example/v1/alert", "json", id="host-with-scheme-and-endpoint"),
    pytest.param(_json(conn_type="http", host="alerts.example", schema="https", port=8443,
                       extra={"endpoint": "hook"}),
                 "https://alerts.example:8443/hook", "json", id="schema-is-the-scheme"),
    pytest.param(_json(conn_type="http", host="ignored.example", extra={"url": "http://10.1.2.3/x", "format": "SLACK"}),
                 "http://10.1.2.3/x", "slack", id="extra-url-wins"),
])
def test_webhook_url_from_the_connection(conn: Connection, url: str, fmt: str) -> None:
    channel = channel_from_connection(conn)
    assert isinstance(channel, Webhook)
    assert (channel.url, channel.fmt) == (url, fmt)
    assert urlsplit(url).path not in channel.describe()  # the path (a webhook's secret) is never logged


@pytest.mark.parametrize(("port", "extra", "starttls", "ssl"), [
    pytest.param(587, {}, True, False, id="587-starttls"),
    pytest.param(465, {}, False, True, id="465-smtps"),
    pytest.param(25, {}, False, False, id="25-plain"),
    pytest.param(2525, {"starttls": "true"}, True, False, id="explicit-starttls"),
    pytest.param(587, {"starttls": False}, False, False, id="starttls-off"),
])
def test_email_tls_defaults_follow_the_port(port: int, extra: dict, starttls: bool, ssl: bool) -> None:
    channel = channel_from_connection(_json(conn_type="smtp", host="mail.example", port=port,
                                            extra={"to": ["a@x.example", "b@x.example"], **extra}))
    assert isinstance(channel, Email)
    assert (channel.starttls, channel.ssl) == (starttls, ssl)
    assert channel.recipients == ("a@x.example", "b@x.example")


@pytest.mark.parametrize(("conn", "problem"), [
    pytest.param(_json(conn_type="postgres", host="db"), "not an alert channel", id="wrong-type"),
    pytest.param(_json(conn_type="http"), "needs extra.url or a host", id="webhook-without-host"),
    pytest.param(_json(conn_type="http", extra={"url": "ftp://x/y"}), "must be http(s)", id="not-http"),
    pytest.param(_json(conn_type="http", host="x", extra={"format": "xml"}), "json or slack", id="format"),
    pytest.param(_json(conn_type="http", host="x", extra={"attempts": 9}), "outside 1..5", id="too-many-tries"),
    pytest.param(_json(conn_type="smtp", host="mail"), "needs extra.to", id="mail-without-recipient"),
    pytest.param(_json(conn_type="smtp", extra={"to": "a@x"}), "needs a host", id="mail-without-host"),
    pytest.param(_json(conn_type="smtp", host="m", extra={"to": "a@x", "starttls": "maybe"}), "true/false",
                 id="not-a-flag"),
])
def test_an_unusable_connection_says_why(conn: Connection, problem: str) -> None:
    with pytest.raises(ChannelConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        channel_from_connection(conn)


def _flaky(failures: int, error: type[Exception] = _Retryable) -> tuple[list[int], object]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= failures:
            raise error("down") if error is _Retryable else error("refused", 1)
        return "delivered"

    return calls, attempt


def test_retry_waits_longer_each_time_and_stops_when_delivered() -> None:
    waits: list[float] = []
    calls, attempt = _flaky(2)
    assert Retry(attempts=4, first_delay_s=0.5).run(attempt, sleep=waits.append) == ("delivered", 3)
    assert (waits, len(calls)) == ([0.5, 1.0], 3)


def test_retry_is_bounded() -> None:
    waits: list[float] = []
    calls, attempt = _flaky(10)
    with pytest.raises(DeliveryError) as err:
        Retry(attempts=3, first_delay_s=1).run(attempt, sleep=waits.append)
    assert (err.value.attempts, len(calls), waits) == (3, 3, [1, 2])  # no wait after the last attempt


def test_retry_waits_are_capped() -> None:
    waits: list[float] = []
    calls, attempt = _flaky(10)
    with pytest.raises(DeliveryError):
        Retry(attempts=5, first_delay_s=20).run(attempt, sleep=waits.append)
    assert (len(calls), waits) == (5, [20, 30, 30, 30])  # doubling, at most max_delay_s


def test_recipients_may_be_separated_by_semicolons_as_the_smtp_provider_reads_them() -> None:
    channel = channel_from_connection(_json(conn_type="smtp", host="mail.example",
                                            extra={"to": "a@x.example; b@x.example,c@x.example"}))
    assert isinstance(channel, Email)
    assert channel.recipients == ("a@x.example", "b@x.example", "c@x.example")


def test_a_refusal_is_not_retried() -> None:
    calls, attempt = _flaky(10, DeliveryError)
    with pytest.raises(DeliveryError) as err:
        Retry(attempts=3).run(attempt, sleep=lambda s: None)
    assert (err.value.attempts, len(calls)) == (1, 1)


def test_what_to_do_comes_from_the_exception_its_cause_or_the_operator() -> None:
    actionable = ActionableFailure("the source is gone", what_to_do="restore it")
    assert what_to_do_of(actionable) == "restore it"
    try:
        try:
            raise actionable
        except ActionableFailure as inner:
            raise AirflowFailException("wrapped") from inner
    except AirflowFailException as outer:
        assert what_to_do_of(outer) == "restore it"
    operator = SimpleNamespace(what_to_do="re-run the operator's own fix")
    assert what_to_do_of(RuntimeError("no hint"), operator) == "re-run the operator's own fix"
    assert what_to_do_of(RuntimeError("no hint"), SimpleNamespace()) is None
    assert str(actionable).splitlines() == ["the source is gone", "What to do: restore it"]


def test_without_a_hint_the_alert_points_to_the_log_and_the_runbook() -> None:
    ti = SimpleNamespace(dag_id="data_quality_daily", task_id="check_gaps", run_id="scheduled__x", try_number=2,
                         max_tries=2, hostname="worker-1", log_url="http://ui/dags/data_quality_daily/runs/x/tasks/y")
    report = report_from_context({"ti": ti, "run_id": "scheduled__x", "exception": ValueError("bad\nsecond line")})
    assert report.exception == "ValueError: bad"  # the first line only
    assert report.log_url in report.what_to_do
    assert report.runbook_url.endswith("/dags/data_quality_daily") and report.runbook_url in report.what_to_do
    assert report.text().splitlines()[0] == \
        "FAILED data_quality_daily.check_gaps (run scheduled__x, try 2 of 3) on host worker-1: ValueError: bad"


def test_a_killed_task_has_no_exception_and_still_a_report() -> None:
    assert "killed" in first_line(None)
    assert first_line("Task received SIGTERM") == "Task received SIGTERM"


def _content_failure(rows: list[dict]) -> CheckResult:
    return CheckResult("content_checksum", "fail", "ohlcv_data", None, expected="30 region-months equal",
                       actual="1 region-months differ: KR 2025-08", details={"months": [], "rows": rows})


def test_the_verdict_names_the_first_differing_row_and_the_task_to_clear() -> None:
    row = {"region": "KR", "day": "2025-08-25", "key": {"ticker": "005930", "date": "2025-08-25"},
           "problem": "values differ", "columns": {"close": {"source": "71000.0", "target": "70500.0"}}}
    failed = [_content_failure([row] * 5),
              CheckResult("indexes", "fail", "tickers", None, expected="7 valid indexes", actual="missing x")]
    text = verdict.describe(failed, total=40)
    first = text.splitlines()[0]
    assert first.startswith("Validation failed (2 of 40 checks)")
    assert "ticker=005930, date=2025-08-25" in first and first.endswith(": close differs")
    assert "71000" not in text and "70500" not in text  # keys and column names, never row data
    assert text.count("ticker=005930") == 1 + verdict.MAX_ROWS  # the first line, then at most MAX_ROWS rows
    assert f"{5 - verdict.MAX_ROWS} more differing rows" in text
    todo = verdict.what_to_do(failed, "manual__1")
    assert "clear load_ohlcv_data and validate" in todo
    assert "clear prepare" in todo  # a missing index: the schema step
    assert "run_id 'manual__1'" in todo


def test_extra_rows_of_a_merged_table_point_at_an_earlier_load_too() -> None:
    """tickers is upserted, never emptied: the verdict says leftovers of an earlier source may explain it."""
    extra = CheckResult("row_counts", "fail", "tickers", "CN", expected="source 400", actual="loaded 433 + rejected 0")
    todo = verdict.what_to_do([extra], "manual__2")
    assert "tickers is merged (upserted) by a load, never emptied" in todo
    assert "earlier load of another source file" in todo
    assert "merged" not in verdict.what_to_do([_content_failure([])], "manual__2")  # ohlcv_data is replaced


def test_bad_params_say_what_did_not_happen_and_how_to_go_on() -> None:
    from quantdbops.errors import bad_params

    exc = bad_params(ValueError("regions: 'XX' is not one of KR, US"), nothing="nothing was checked")
    assert isinstance(exc, AirflowFailException)  # fails at once: a retry would read the same params
    assert str(exc).splitlines() == ["Bad params: regions: 'XX' is not one of KR, US",
                                     "What to do: nothing was checked; trigger again with valid params (the "
                                     "trigger form lists the allowed values)"]
    assert what_to_do_of(exc) == exc.what_to_do


@pytest.mark.parametrize("name", ["operators.backup.BackupStep", "operators.maintenance.MaintenanceStep",
                                  "operators.migration.MigrateTableOperator"])
def test_steps_that_fail_unexplained_still_give_the_alert_a_next_step(name: str) -> None:
    """A database that stops answering mid-step raises psycopg's error: the operator's own hint goes out."""
    import importlib

    module, _, cls = name.rpartition(".")
    operator = getattr(importlib.import_module(f"quantdbops.{module}"), cls)
    hint = what_to_do_of(ConnectionError("server closed the connection unexpectedly"), operator)
    assert hint and "clear" in hint

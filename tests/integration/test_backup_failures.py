"""What a retry can and cannot fix, against real endpoints: moto's S3 server, a loopback port nobody listens on,
a tiny HTTP server that answers every request with one S3 error, and the test's PostgreSQL cluster.

Deterministic failures (no such bucket, access denied, no such database or role) must fail on the first
request with ``ActionableFailure`` (an ``AirflowFailException``: Airflow does not retry it either);
transient ones (refused connection, throttling, 5xx) must be tried again as configured, then fail normally.
Attempts are counted where they happen: every HTTP request botocore sends (its ``before-send`` event), or
every request the tiny server answers.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from airflow.sdk.exceptions import AirflowFailException

from quantdbops.backup import nightly_steps, store, stream
from quantdbops.backup.naming import TZ
from quantdbops.backup.settings import BackupSettings
from quantdbops.backup.store import BackupStoreError, RetryPolicy
from quantdbops.errors import ActionableFailure
from quantdbops.io.pg import connect
from support.backup import conn_kwargs, new_bucket, set_s3_endpoint

FAST_RETRY = RetryPolicy(attempts=3, first_delay_s=0.05, max_delay_s=0.2)
WHEN = datetime(2025, 10, 17, 2, 0, tzinfo=TZ)
PASSWORD = "never-in-a-message-7f3a"


def counted_hook(**kwargs: Any) -> tuple[Any, list[str]]:
    """A hook of connection quant_s3 (no botocore retries unless asked) and the list of requests it sends."""
    hook = store.make_hook(**{"sdk_retries": 0, **kwargs})
    sent: list[str] = []
    hook.get_conn().meta.events.register("before-send.s3", lambda request, **_: sent.append(request.method))
    return hook, sent


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OneAnswerS3:
    """An HTTP server on loopback that answers every request with ``status`` and the S3 error ``code``."""

    def __init__(self, status: int, code: str) -> None:
        self.requests: list[str] = []
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code} from the test'
                "</Message></Error>").encode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers botocore's "Expect: 100-continue" instead of a 1 s wait

            def answer(self) -> None:
                outer.requests.append(self.command)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = answer

            def log_message(self, *args: object) -> None:  # the test's output is the assertions
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def s3(airflow_connections: dict[str, str], s3_endpoint: str) -> str:
    """Connection quant_s3 on moto; the endpoint."""
    return s3_endpoint


@pytest.fixture
def answering(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
              airflow_connections: dict[str, str]) -> Iterator[OneAnswerS3]:
    server = OneAnswerS3(*request.param)
    set_s3_endpoint(monkeypatch, server.url)
    yield server
    server.close()


# --- S3: deterministic -------------------------------------------------------------------------------------
def test_preflight_fails_at_once_on_a_missing_bucket(s3: str, pg_dsn: str, tmp_path: Path) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    hook, sent = counted_hook()
    s = BackupSettings(bucket=missing, local_dir=tmp_path, retry=FAST_RETRY)
    with pytest.raises(ActionableFailure) as failed:
        nightly_steps.preflight(conn_kwargs(pg_dsn), hook, s, WHEN)
    assert isinstance(failed.value, AirflowFailException)  # Airflow does not retry it
    assert sent == ["HEAD"]  # one HeadBucket: not retried here either
    message = failed.value.message
    assert f"bucket {missing!r} does not exist" in message and "(404;" in message
    assert "not retried: a bucket does not appear by itself" in message
    assert failed.value.what_to_do.startswith(f"create bucket {missing!r}")


def test_an_upload_to_a_missing_bucket_fails_at_once(s3: str, tmp_path: Path) -> None:
    import io

    hook, sent = counted_hook()
    with pytest.raises(ActionableFailure, match=r"start of the upload of backups/x\.dump: bucket 'nowhere-[0-9a-f]+' "
                                                r"does not exist .*\(NoSuchBucket"):
        stream.upload_stream(hook, f"nowhere-{uuid.uuid4().hex[:8]}", "backups/x.dump", io.BytesIO(b"dump").read,
                             encryption=stream.Encryption(), policy=FAST_RETRY)
    assert sent == ["POST"]  # the multipart upload's creation, once


def test_a_missing_object_to_restore_fails_at_once(s3: str, tmp_path: Path) -> None:
    bucket = new_bucket(s3, f"bk-{uuid.uuid4().hex[:10]}")
    hook, sent = counted_hook()
    with pytest.raises(ActionableFailure, match=rf"download of backups/gone\.dump: there is no object s3://{bucket}/"
                                                r"backups/gone\.dump.*not retried"):
        stream.download(hook, bucket, "backups/gone.dump", None, policy=FAST_RETRY)
    assert sent == ["GET"]


@pytest.mark.parametrize(("answering", "what"), [
    pytest.param((403, "AccessDenied"), "may not do this", id="access-denied"),
    pytest.param((403, "InvalidAccessKeyId"), "rejects the credentials", id="unknown-access-key"),
    pytest.param((403, "SignatureDoesNotMatch"), "rejects the credentials", id="wrong-secret"),
], indirect=["answering"])
def test_refused_credentials_fail_at_once(answering: OneAnswerS3, what: str) -> None:
    hook = store.make_hook(sdk_retries=2)  # botocore's own retries leave these alone too
    with pytest.raises(ActionableFailure, match=what) as failed:
        store.put_json(hook, "bkt", "backups/db/latest.json", {"x": 1}, FAST_RETRY)
    assert answering.requests == ["PUT"]
    assert "not retried" in failed.value.message and "then clear this task" in failed.value.what_to_do


# --- S3: transient -----------------------------------------------------------------------------------------
def test_a_refused_connection_is_retried_as_configured_then_fails_for_airflow_to_retry(
        airflow_connections: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    set_s3_endpoint(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    hook, sent = counted_hook(connect_timeout=1)
    said: list[str] = []
    with pytest.raises(BackupStoreError) as failed:
        store.check_bucket(hook, "bkt", RetryPolicy(attempts=4, first_delay_s=0.01, max_delay_s=0.02),
                           say=lambda msg, *a: said.append(msg % a))
    assert not isinstance(failed.value, AirflowFailException)
    assert sent == ["HEAD"] * 4
    assert len(said) == 3 and "transient EndpointConnectionError" in said[0]
    assert "failed after 4 attempts" in str(failed.value)
    assert str(failed.value).endswith("transient (network, throttling, server errors): the task fails normally "
                                      "and Airflow's task retries follow")


@pytest.mark.parametrize("answering", [
    pytest.param((503, "SlowDown"), id="slow-down"),
    pytest.param((500, "InternalError"), id="internal-error"),
    pytest.param((429, "TooManyRequests"), id="too-many-requests"),
], indirect=True)
def test_throttling_and_server_errors_are_retried(answering: OneAnswerS3) -> None:
    hook = store.make_hook(sdk_retries=0)
    with pytest.raises(BackupStoreError, match=r"write of backups/db/latest\.json failed after 3 attempts") as failed:
        store.put_json(hook, "bkt", "backups/db/latest.json", {"x": 1}, FAST_RETRY)
    assert answering.requests == ["PUT"] * 3
    assert str(failed.value).count("attempt ") == 3


# --- PostgreSQL --------------------------------------------------------------------------------------------
def test_a_database_that_does_not_exist_fails_at_once(pg_dsn: str) -> None:
    kw = {**conn_kwargs(pg_dsn), "dbname": "quant_platfrom", "password": PASSWORD}
    with pytest.raises(ActionableFailure) as failed:
        connect(kw)
    text = f"{failed.value}"
    assert failed.value.message.startswith(f"cannot connect to PostgreSQL at {kw['host']}:{kw['port']} (database "
                                           "quant_platfrom, user postgres): database \"quant_platfrom\" does not "
                                           "exist; not retried: a database does not appear by itself")
    assert "create the database" in failed.value.what_to_do
    assert PASSWORD not in text and "password=" not in text


def test_a_role_that_does_not_exist_fails_at_once(pg_dsn: str) -> None:
    dsn = f"{pg_dsn.replace('user=postgres', 'user=nobody_here')} password={PASSWORD}"
    with pytest.raises(ActionableFailure, match=r'user nobody_here\): role "nobody_here" does not exist; not '
                                                r"retried") as failed:
        connect(dsn)
    assert PASSWORD not in str(failed.value) and "CREATE ROLE" in failed.value.what_to_do


def test_a_closed_port_is_transient_and_propagates_as_it_is(pg_dsn: str) -> None:
    kw = {**conn_kwargs(pg_dsn), "port": closed_port(), "connect_timeout": 2, "password": PASSWORD}
    with pytest.raises(psycopg.OperationalError) as failed:
        connect(kw)
    assert not isinstance(failed.value, AirflowFailException)
    note = "\n".join(getattr(failed.value, "__notes__", []))
    assert note.startswith(f"transient (nothing accepts connections at 127.0.0.1:{kw['port']};")
    assert note.endswith("Airflow's task retries follow") and PASSWORD not in note


def test_preflight_fails_at_once_on_a_misspelled_database(s3: str, pg_dsn: str, tmp_path: Path) -> None:
    bucket = new_bucket(s3, f"bk-{uuid.uuid4().hex[:10]}")
    s = BackupSettings(bucket=bucket, local_dir=tmp_path, retry=FAST_RETRY)
    with pytest.raises(ActionableFailure, match=r'database "quant_platfrom" does not exist; not retried'):
        nightly_steps.preflight({**conn_kwargs(pg_dsn), "dbname": "quant_platfrom"}, store.make_hook(), s, WHEN)

"""Which failed PostgreSQL connection attempts a retry cannot fix (``quantdbops.io.failures``), read from the
texts libpq writes (psycopg 3 connection errors mostly carry no SQLSTATE) and from SQLSTATEs where present."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from quantdbops.errors import ActionableFailure
from quantdbops.io.failures import classify, not_retried, safe_target, transient_note

AT = 'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
TARGET = {"host": "10.0.0.5", "port": "5432", "dbname": "quant_platform", "user": "quant_user"}


@pytest.mark.parametrize(("text", "cause"), [
    pytest.param(AT + 'FATAL:  database "quant_platfrom" does not exist', 'database "quant_platfrom" does not exist',
                 id="no-database"),
    pytest.param(AT + 'FATAL:  role "quant_usr" does not exist', 'role "quant_usr" does not exist', id="no-role"),
    pytest.param(AT + 'FATAL:  password authentication failed for user "quant_user"',
                 'password authentication failed for user "quant_user"', id="password"),
    pytest.param(AT + "fe_sendauth: no password supplied", 'password authentication failed for user "quant_user"',
                 id="no-password"),
    pytest.param(AT + 'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "quant_user", database '
                 '"quant_platform", no encryption', "the server's pg_hba.conf admits no such connection (no "
                 'pg_hba.conf entry for host "10.0.0.9", user "quant_user", database "quant_platform", no encryption)',
                 id="pg-hba"),
    pytest.param(AT + "server does not support SSL, but SSL was required",
                 "TLS does not fit (server does not support SSL, but SSL was required)", id="ssl-required"),
    pytest.param(AT + "SSL error: certificate verify failed", "TLS does not fit (SSL error: certificate verify failed)",
                 id="certificate"),
])
def test_deterministic_failures_are_recognised_from_the_text(text: str, cause: str) -> None:
    verdict = classify(psycopg.OperationalError(text), TARGET)
    assert verdict.deterministic and verdict.cause == cause and verdict.what_to_do.endswith("then clear the task")


@pytest.mark.parametrize(("text", "cause"), [
    pytest.param(AT + "timeout expired", "the server did not answer in time", id="timeout"),
    pytest.param(AT + "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
                 "nothing accepts connections at 10.0.0.5:5432", id="refused"),
    pytest.param(AT + "server closed the connection unexpectedly\n\tThis probably means the server terminated "
                 "abnormally", "the connection was dropped", id="closed"),
    pytest.param(AT + "FATAL:  the database system is starting up", "the server is starting up or shutting down",
                 id="starting-up"),
    pytest.param(AT + "FATAL:  the database system is shutting down", "the server is starting up or shutting down",
                 id="shutting-down"),
    pytest.param(AT + "FATAL:  sorry, too many clients already", "the server has no free connection slot",
                 id="too-many-clients"),
    pytest.param(AT + "FATAL:  remaining connection slots are reserved for non-replication superuser connections",
                 "the server has no free connection slot", id="reserved-slots"),
    pytest.param('could not translate host name "dbhost" to address: Temporary failure in name resolution',
                 "unrecognised connection failure", id="unrecognised"),
])
def test_transient_failures_are_not_failed_at_once(text: str, cause: str) -> None:
    exc = psycopg.OperationalError(text)
    assert not classify(exc, TARGET).deterministic and classify(exc, TARGET).cause == cause
    assert not_retried(exc, TARGET) is None
    assert transient_note(exc, TARGET).endswith("the task fails normally and Airflow's task retries follow")


@pytest.mark.parametrize(("exc", "cause", "deterministic"), [
    pytest.param(errors.InvalidCatalogName("odd words"), 'database "quant_platform" does not exist', True,
                 id="3D000"),
    pytest.param(errors.InvalidPassword("odd words"), 'password authentication failed for user "quant_user"', True,
                 id="28P01"),
    pytest.param(errors.InvalidAuthorizationSpecification("odd words"), "the server refuses this login (odd words)",
                 True, id="28000"),
    pytest.param(errors.InvalidAuthorizationSpecification('role "x" does not exist'), 'role "x" does not exist', True,
                 id="28000-role"),
    pytest.param(errors.CannotConnectNow("odd words"), "the server is starting up or shutting down", False,
                 id="57P03"),
    pytest.param(errors.TooManyConnections("odd words"), "the server has no free connection slot", False,
                 id="53300"),
])
def test_a_sqlstate_decides_where_there_is_one(exc: psycopg.Error, cause: str, deterministic: bool) -> None:
    verdict = classify(exc, TARGET)
    assert (verdict.deterministic, verdict.cause) == (deterministic, cause)


def test_the_failure_names_host_port_database_and_user_never_the_password() -> None:
    secret = "pa55-w0rd!"
    for args in ({**TARGET, "password": secret},
                 {"conninfo": f"host=10.0.0.5 port=5432 dbname=quant_platform user=quant_user password={secret}"},
                 {"conninfo": f"postgresql://quant_user:{secret}@10.0.0.5:5432/quant_platform"}):
        where = safe_target(args)
        assert where == TARGET
        failure = not_retried(psycopg.OperationalError(AT + 'FATAL:  database "quant_platform" does not exist'), where)
        assert isinstance(failure, ActionableFailure)
        assert failure.message == ("cannot connect to PostgreSQL at 10.0.0.5:5432 (database quant_platform, user "
                                   'quant_user): database "quant_platform" does not exist; not retried: a database '
                                   "does not appear by itself")
        assert secret not in str(failure)

"""Every task's PostgreSQL connection goes through the postgres provider's ``PostgresHook``: each extra the
provider documents reaches libpq, for the task's own sessions and for ``pg_dump``/``pg_restore`` alike, and
the platform's session settings still apply. Real servers only: a plain cluster, and a TLS-only one that
verifies the server's name and admits one role by client certificate alone.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import psycopg
import pytest

from pgcluster import CERT_ONLY_ROLE, Cluster
from quantdbops.backup.dump import DumpProcess
from quantdbops.errors import ActionableFailure
from quantdbops.io.pg import PgTarget, connect, libpq_args
from tlscerts import make_client_certificate


def _set_conn(monkeypatch: pytest.MonkeyPatch, value: dict | str, conn_id: str = "quant_postgres") -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value if isinstance(value, str) else json.dumps(value))


def _parts(dsn: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in dsn.split())


def _settings(conn: psycopg.Connection) -> dict[str, str]:
    names = ("TimeZone", "DateStyle", "extra_float_digits", "statement_timeout", "application_name")
    return {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}


def test_the_documented_extras_reach_libpq_and_our_settings_still_apply(
        pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _parts(pg_dsn)
    _set_conn(monkeypatch, {"conn_type": "postgres", "host": p["host"], "port": int(p["port"]), "login": p["user"],
                            "schema": p["dbname"], "extra": {
                                "options": "-c statement_timeout=12345", "keepalives": 1, "keepalives_idle": 17,
                                "connect_timeout": 5, "sslmode": "disable", "cursor": "dictcursor"}})
    with connect("quant_postgres") as conn:
        assert _settings(conn) == {"TimeZone": "Asia/Seoul", "DateStyle": "ISO, YMD", "extra_float_digits": "1",
                                   "statement_timeout": "12345ms", "application_name": "quant-db-ops"}
        assert conn.execute("SELECT 1, 2").fetchone() == (1, 2)  # the cursor extra does not change our rows
        used = conn.info.get_parameters()
        assert (used["keepalives"], used["keepalives_idle"], used["connect_timeout"]) == ("1", "17", "5")
    args = libpq_args("quant_postgres")  # what pg_dump gets
    assert args["options"] == "-c statement_timeout=12345" and args["keepalives_idle"] == 17
    assert "cursor" not in args  # the provider keeps it for its own cursors


def test_a_uri_with_query_parameters(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _parts(pg_dsn)
    options = urllib.parse.quote("-c statement_timeout=23456")
    _set_conn(monkeypatch, f"postgresql://{p['user']}@{p['host']}:{p['port']}/{p['dbname']}"
                           f"?options={options}&connect_timeout=4")
    with connect("quant_postgres", autocommit=True) as conn:
        assert _settings(conn)["statement_timeout"] == "23456ms"
        assert conn.info.get_parameters()["connect_timeout"] == "4"


def test_an_iam_connection_signs_a_token_for_every_connection(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``iam: true``: the provider asks AWS for an RDS auth token (signed locally with the AWS connection's
    keys) and connects with it as the password; the test server trusts loopback, so the token is accepted."""
    p = _parts(pg_dsn)
    _set_conn(monkeypatch, {"conn_type": "aws", "login": "AKIDEXAMPLE", "password": "secret",
                            "extra": {"region_name": "ap-northeast-2"}}, "rds_iam")
    _set_conn(monkeypatch, {"conn_type": "postgres", "host": p["host"], "port": int(p["port"]), "login": p["user"],
                            "schema": p["dbname"], "extra": {"iam": True, "aws_conn_id": "rds_iam"}})
    token = str(libpq_args("quant_postgres")["password"])
    assert token.startswith(f"{p['host']}:{p['port']}/?Action=connect&DBUser={p['user']}")
    assert "X-Amz-Signature=" in token
    with connect("quant_postgres", autocommit=True) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (p["dbname"],)


@pytest.fixture
def tls_db(tls_cluster: Cluster) -> str:
    import uuid

    name = f"t_{uuid.uuid4().hex[:12]}"
    tls_cluster.createdb(name)
    with psycopg.connect(tls_cluster.dsn(name), autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (CERT_ONLY_ROLE,)).fetchone():
            c.execute(f"CREATE ROLE {CERT_ONLY_ROLE} LOGIN SUPERUSER")
    return name


def test_tls_files_and_a_client_certificate_reach_the_sessions_and_pg_dump(
        tls_cluster: Cluster, tls_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert tls_cluster.tls is not None
    client = make_client_certificate(tls_cluster.tls, CERT_ONLY_ROLE)
    base = {"conn_type": "postgres", "host": "localhost", "port": tls_cluster.port, "login": CERT_ONLY_ROLE,
            "schema": tls_db}
    tls = {"sslmode": "verify-full", "sslrootcert": str(tls_cluster.tls.ca_cert)}
    _set_conn(monkeypatch, {**base, "extra": {**tls, "sslcert": str(client.cert), "sslkey": str(client.key)}})
    with connect("quant_postgres", autocommit=True) as conn:
        ssl, dn = conn.execute("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert (ssl, dn) == (True, f"/CN={CERT_ONLY_ROLE}")
    # pg_dump gets the same files (no environment variable exists for some of them: they go in --dbname)
    dump = DumpProcess(PgTarget(conn_id="quant_postgres").args())
    assert len(dump.read(1 << 20)) > 0
    dump.finish()
    # Without the certificate the role is not admitted: the failure says so at once, no retry.
    _set_conn(monkeypatch, {**base, "extra": tls})
    with pytest.raises((ActionableFailure, psycopg.OperationalError)) as refused:
        connect("quant_postgres").close()
    assert "certificate" in str(refused.value)

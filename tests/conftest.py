"""Shared fixtures: a real PostgreSQL 15, a real S3 endpoint, an Airflow home with its own metadata DB.

Nothing here mocks PostgreSQL, S3 or Airflow. The Airflow environment is set before anything imports
Airflow, so every test (and every ``dag.test()``) runs against this session's own home and connections.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="quantdbops-tests-"))
os.chmod(_SESSION_DIR, 0o755)  # the postgres OS user must reach the cluster directories below

# Connections and variables inherited from the shell (the Makefile exports the demo's, a developer may have
# production ones) must never reach a test: a test that forgot its fixture would write into that database.
for _name in [n for n in os.environ if n.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))]:
    del os.environ[_name]

# Airflow reads these at import time: set them before any test module imports airflow.
os.environ.update({
    "AIRFLOW_HOME": str(_SESSION_DIR / "airflow"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Seoul",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
})
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "scripts")]

from pgcluster import Cluster, free_port, timescaledb_available  # noqa: E402
from tlscerts import ServerTls, make_server_certificates  # noqa: E402

TSDB_SKIP_REASON = (
    "TimescaleDB is not installed for the local PostgreSQL 15 (no timescaledb.control in "
    "/usr/share/postgresql/15/extension); it is not in the package registries this machine reaches"
)
MODES = [
    pytest.param("postgresql", id="plain"),
    pytest.param("timescaledb", id="timescaledb", marks=pytest.mark.timescaledb),
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if timescaledb_available():
        return
    skip = pytest.mark.skip(reason=TSDB_SKIP_REASON)
    for item in items:
        if "timescaledb" in item.keywords:
            item.add_marker(skip)


def repoint_root_stream_handlers(stream: object, *, only_closed: bool = False) -> None:
    """Point the root logger's plain stream handlers (or only those on a closed stream) at ``stream``.

    Airflow configures logging once per process, with a stream handler on the ``sys.stderr``/``stdout`` of
    that moment: under pytest, one test's capture, closed when that test ends.
    """
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and (not only_closed or getattr(handler.stream, "closed", False)):
            with handler.lock:  # type: ignore[union-attr]  (not setStream: it flushes the closed stream)
                handler.stream = stream


@pytest.fixture(autouse=True)
def _root_log_handlers_on_this_tests_stderr() -> None:
    """Without this, every log line after the first test's capture closed would print a ``Logging error``
    traceback instead of itself."""
    repoint_root_stream_handlers(sys.stderr, only_closed=True)


def _cluster(name: str, timescaledb: bool, tls: ServerTls | None = None) -> Iterator[Cluster]:
    cluster = Cluster(_SESSION_DIR / name, free_port(), fsync=False, timescaledb=timescaledb,
                      background_jobs=False, tls=tls)
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def plain_cluster() -> Iterator[Cluster]:
    """PostgreSQL 15 without TimescaleDB (the RDS-like mode), on a free loopback port."""
    yield from _cluster("pg-plain", timescaledb=False)


@pytest.fixture(scope="session")
def tsdb_cluster() -> Iterator[Cluster]:
    """PostgreSQL 15 with TimescaleDB preloaded (tests using it are skipped where it is not installed)."""
    if not timescaledb_available():
        pytest.skip(TSDB_SKIP_REASON)
    yield from _cluster("pg-tsdb", timescaledb=True)


@pytest.fixture(scope="session")
def tls_cluster() -> Iterator[Cluster]:
    """PostgreSQL 15 (plain) that takes TCP connections only over TLS (``hostssl``), with a CA and a server
    certificate for 127.0.0.1/localhost made for this session by openssl; ``dsn()`` verifies it (verify-full)."""
    yield from _cluster("pg-tls", timescaledb=False, tls=make_server_certificates(_SESSION_DIR / "tls"))


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """The cluster of the test's mode: parametrise a test with ``MODES`` as ``mode`` (default: plain)."""
    mode = request.getfixturevalue("mode") if "mode" in request.fixturenames else "postgresql"
    return request.getfixturevalue("tsdb_cluster" if mode == "timescaledb" else "plain_cluster")


@pytest.fixture
def pg_dsn(cluster: Cluster) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    cluster.createdb(name)
    yield cluster.dsn(name)
    import psycopg

    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_conn(pg_dsn: str) -> Iterator[object]:
    """An autocommit connection to the test's fresh database, in the platform's session settings."""
    from quantdbops.io.pg import connect

    conn = connect(pg_dsn, autocommit=True)
    yield conn
    conn.close()


@pytest.fixture
def schema_conn(pg_conn: object) -> object:
    """``pg_conn`` with the target schema applied."""
    from quantdbops.schema.apply import apply_schema

    apply_schema(pg_conn)  # type: ignore[arg-type]
    return pg_conn


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's real S3 HTTP server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The session's Airflow metadata database, migrated once (``dag.test()`` needs it)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    res = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ,
                         check=False)
    if res.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return home


@pytest.fixture
def airflow_connections(monkeypatch: pytest.MonkeyPatch, pg_dsn: str, s3_endpoint: str,
                        tmp_path: Path) -> dict[str, str]:
    """The three connections as ``AIRFLOW_CONN_*`` variables, pointing at this test's services."""
    parts = dict(p.split("=", 1) for p in pg_dsn.split())
    sqlite_path = tmp_path / "spock_local.db"
    conns = {
        "quant_postgres": json.dumps({
            "conn_type": "postgres", "host": parts["host"], "port": int(parts["port"]),
            "login": parts["user"], "schema": parts["dbname"],
        }),
        "quant_s3": json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
        }),
        "spock_sqlite": json.dumps({"conn_type": "sqlite", "host": str(sqlite_path)}),
    }
    for conn_id, value in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
    return {"sqlite_path": str(sqlite_path), "pg_dsn": pg_dsn, "s3_endpoint": s3_endpoint}

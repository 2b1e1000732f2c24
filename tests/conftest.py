"""What every tier shares: Airflow's environment, the timescaledb skip, the root log handlers, and the session's
services that more than one tier uses (the plain and the TLS-only PostgreSQL 15 clusters, a real S3 endpoint).

Nothing here mocks PostgreSQL, S3 or Airflow. The Airflow environment is set before anything imports
Airflow, so every test (and every ``dag.test()``) runs against this session's own home and connections.
A tier's own fixtures are in its conftest.py (tests/integration, tests/dags, tests/compose); the helpers
tests call are in tests/support/.
"""

from __future__ import annotations

import os
import sys
import tempfile
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
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "scripts"), str(REPO / "tests")]

from pgcluster import Cluster, free_port, timescaledb_available  # noqa: E402
from support.harness import TSDB_SKIP_REASON, repoint_root_stream_handlers, session_cluster  # noqa: E402
from tlscerts import make_server_certificates  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if timescaledb_available():
        return
    skip = pytest.mark.skip(reason=TSDB_SKIP_REASON)
    for item in items:
        if "timescaledb" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _root_log_handlers_on_this_tests_stderr() -> None:
    """Without this, every log line after the first test's capture closed would print a ``Logging error``
    traceback instead of itself."""
    repoint_root_stream_handlers(sys.stderr, only_closed=True)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """This session's temp directory: the clusters, the Airflow home and the certificates live under it."""
    return _SESSION_DIR


@pytest.fixture(scope="session")
def plain_cluster() -> Iterator[Cluster]:
    """PostgreSQL 15 without TimescaleDB (the RDS-like mode), on a free loopback port."""
    yield from session_cluster(_SESSION_DIR / "pg-plain", timescaledb=False)


@pytest.fixture(scope="session")
def tls_cluster() -> Iterator[Cluster]:
    """PostgreSQL 15 (plain) that takes TCP connections only over TLS (``hostssl``), with a CA and a server
    certificate for 127.0.0.1/localhost made for this session by openssl; ``dsn()`` verifies it (verify-full)."""
    yield from session_cluster(_SESSION_DIR / "pg-tls", timescaledb=False,
                               tls=make_server_certificates(_SESSION_DIR / "tls"))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's real S3 HTTP server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()

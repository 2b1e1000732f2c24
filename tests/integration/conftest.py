"""The integration tier's fixtures: a fresh database per test on the session's cluster of the test's mode,
the Airflow metadata database, the three connections pointing at this test's services, the backup sample.

The clusters both tiers use (plain, TLS-only) and the S3 endpoint are in tests/conftest.py; the TimescaleDB
one is only this tier's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgcluster import Cluster, timescaledb_available
from sample import generate
from support.backup import SAMPLE
from support.harness import TSDB_SKIP_REASON, session_cluster


@pytest.fixture(scope="session")
def tsdb_cluster(session_dir: Path) -> Iterator[Cluster]:
    """PostgreSQL 15 with TimescaleDB preloaded (tests using it are skipped where it is not installed)."""
    if not timescaledb_available():
        pytest.skip(TSDB_SKIP_REASON)
    yield from session_cluster(session_dir / "pg-tsdb", timescaledb=True)


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



@pytest.fixture(scope="session")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The backup tests' source file (``support.backup.SAMPLE``), generated once a session."""
    path = tmp_path_factory.mktemp("backup-sample") / "spock_local.db"
    generate(path, **SAMPLE)
    return path

"""The test harness itself: the S3 endpoint and the three connections work through Airflow's mechanisms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from quantdbops import CONN_POSTGRES, CONN_S3, CONN_SQLITE
from support.harness import MODES


def test_s3_connection_reaches_the_loopback_endpoint(airflow_connections: dict, tmp_path: Path) -> None:
    """quant_s3 (an aws connection with endpoint_url) stores and reads back an object on moto's server."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=CONN_S3)
    hook.create_bucket(bucket_name="harness-check")
    src = tmp_path / "object.bin"
    src.write_bytes(b"\x00quant-db-ops\xff" * 1000)
    hook.load_file(str(src), key="dir/object.bin", bucket_name="harness-check")
    assert hook.get_key("dir/object.bin", bucket_name="harness-check").get()["Body"].read() == src.read_bytes()
    assert hook.conn.meta.endpoint_url == airflow_connections["s3_endpoint"]


@pytest.mark.parametrize("mode", MODES)
def test_postgres_connection_reaches_the_test_database(mode: str, airflow_connections: dict) -> None:
    from quantdbops.io.pg import connect

    with connect(CONN_POSTGRES) as conn:
        db, tz = conn.execute("SELECT current_database(), current_setting('TimeZone')").fetchone()
    assert db == psycopg.conninfo.conninfo_to_dict(airflow_connections["pg_dsn"])["dbname"]
    assert tz == "Asia/Seoul"


def test_sqlite_connection_names_the_file(airflow_connections: dict) -> None:
    from quantdbops.io.sqlite import sqlite_path

    assert sqlite_path(CONN_SQLITE) == airflow_connections["sqlite_path"]


@pytest.mark.parametrize("mode", MODES)
def test_pg_stat_statements_is_preloaded(mode: str, pg_conn: psycopg.Connection) -> None:
    preload = pg_conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    assert "pg_stat_statements" in preload
    assert ("timescaledb" in preload) == (mode == "timescaledb")


def test_a_cluster_never_takes_another_servers_port_for_its_own(plain_cluster: Any, session_dir: Path) -> None:
    """`make demo` in a second checkout, with the first one's PostgreSQL on the same port, must stop with a
    clear error instead of loading into the other server."""
    from pgcluster import Cluster

    other = Cluster(session_dir / "second-checkout", plain_cluster.port, fsync=False, timescaledb=False)
    try:
        with pytest.raises(RuntimeError, match=rf"port {plain_cluster.port} is served by another PostgreSQL "
                                               rf"\(data directory {plain_cluster.data.resolve()}\)"):
            other.start()
    finally:
        other.destroy()
    plain_cluster.start()  # its own server: nothing to say

"""Helpers of the backup tests: a loaded database, S3 hooks, fingerprints (the session's sample file is the
``sample_file`` fixture of tests/integration/conftest.py, generated with ``SAMPLE``).

Expected values are computed here independently of the code under test:
content fingerprints are md5 of every row's text in a fixed order, straight from the catalog.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from quantdbops.io.pg import connect, detect_mode
from quantdbops.migration.source import open_source
from quantdbops.migration.source_plan import SliceFilter
from quantdbops.migration.target_load import load_table
from quantdbops.registry import migratable_tables
from support import dags

SAMPLE = {"tickers_per_region": 3, "days": 60, "seed": 7}
# Tables loaded into the backed-up database: enough for hypertables, partitions, FKs and aggregates.
LOADED = ("tickers", "ohlcv_data", "technical_analysis", "exchange_rate_history")


def conn_kwargs(dsn: str) -> dict[str, object]:
    """libpq keyword arguments of a test DSN (``host=... port=... user=... dbname=...``)."""
    return dict(p.split("=", 1) for p in dsn.split())


def load_sample(source: Path, dsn: str, *, refresh_views: bool = True) -> None:
    """Apply the schema and load a few tables of the sample, as the migration's tasks do; then refresh the
    materialized views, unless ``refresh_views`` is false: then they stay as the schema left them, populated
    on the empty database and stale since the load (as between two weekly refreshes)."""
    from quantdbops.schema.apply import apply_schema

    with connect(dsn, autocommit=True) as c:
        apply_schema(c)
    sconn = open_source(source)
    try:
        with connect(dsn) as pg:
            mode = detect_mode(pg)
            pg.commit()
            for t in migratable_tables():
                if t.name in LOADED:
                    load_table(sconn, pg, t, SliceFilter(), run_id="backup-test", mode=mode, workers=1)
    finally:
        sconn.close()
    if not refresh_views:
        return
    with connect(dsn, autocommit=True) as c:  # materialized views / aggregates hold rows too
        for (name,) in c.execute("SELECT schemaname || '.' || matviewname FROM pg_matviews").fetchall():
            c.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier(*name.split("."))))


def user_tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Every user table and materialized view, independent of the backup package's own query."""
    return [tuple(r) for r in conn.execute(  # type: ignore[misc]
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition "
        "AND n.nspname IN ('public', 'ops') ORDER BY 1, 2")]


def fingerprint(conn: psycopg.Connection, schema: str, name: str) -> tuple[int, str]:
    """(rows, md5 of every row's text in a fixed order)."""
    return tuple(conn.execute(sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {} x").format(
        sql.Identifier(schema, name))).fetchone())  # type: ignore[return-value]


def fingerprints(dsn_or_kwargs: str | dict[str, object], skip: tuple[str, ...] = ()) -> dict[str, tuple[int, str]]:
    with connect(dsn_or_kwargs, autocommit=True) as c:
        return {f"{s}.{n}": fingerprint(c, s, n) for s, n in user_tables(c) if f"{s}.{n}" not in skip}


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def new_bucket(endpoint: str, name: str) -> str:
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def get_json(endpoint: str, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3_client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read())


def set_s3_endpoint(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Point connection quant_s3 at ``endpoint`` (a closed port or a proxy for fault tests)."""
    monkeypatch.setenv("AIRFLOW_CONN_QUANT_S3", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}))


def load_dag(file_stem: str) -> Any:
    """A DAG object from dags/."""
    return dags.load_dag(file_stem)


def task_states(dag_run: Any) -> dict[str, str | None]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


__all__ = ["LOADED", "SAMPLE", "conn_kwargs", "fingerprint", "fingerprints", "get_json", "keys", "load_dag",
           "load_sample", "new_bucket", "s3_client", "set_s3_endpoint", "task_states", "user_tables"]

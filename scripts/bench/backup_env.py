"""The backup benchmark's world (untimed): its PostgreSQL 15 cluster, moto's S3 server, a loaded database.

moto runs in a child process, not as a thread of the benchmark: a thread would share this interpreter's GIL
with the boto3 upload and the SHA-256 it is timing. It is still an in-memory S3 on loopback, so the upload
figures are a lower bound of a real S3's.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from quantdbops.io.pg import DbMode, connect, detect_mode
from quantdbops.migration.source import open_source
from quantdbops.migration.source_plan import SliceFilter
from quantdbops.migration.target_load import load_table
from quantdbops.registry import migratable_tables
from quantdbops.schema.apply import apply_schema

LOADED = ("tickers", "ohlcv_data", "technical_analysis")
SAMPLE_ARGS = ("--tickers-per-region", "400", "--days", "420")  # 1,008,000 OHLCV rows
MIN_OHLCV_ROWS = 1_000_000
_MOTO_CHILD = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # runs until the parent closes our stdin
server.stop()
"""

Say = Callable[[str], None]


# --- the sample -----------------------------------------------------------------------------------------
def ohlcv_rows(path: Path) -> int:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM ohlcv_data").fetchone()[0])
    finally:
        con.close()


def ensure_sample(repo: Path, path: Path, say: Say) -> int:
    """The sample's OHLCV rows; generated with scripts/generate_sample.py when missing or too small."""
    if path.exists():
        try:
            rows = ohlcv_rows(path)
        except sqlite3.Error:
            rows = 0
        if rows >= MIN_OHLCV_ROWS:
            say(f"Sample {path} reused ({rows:,} OHLCV rows)")
            return rows
    say(f"Generating {path} ({' '.join(SAMPLE_ARGS)}, about a minute)...")
    started = time.perf_counter()
    subprocess.run([sys.executable, str(repo / "scripts" / "generate_sample.py"), "--out", str(path),
                    *SAMPLE_ARGS, "--force"], check=True, capture_output=True, text=True)
    rows = ohlcv_rows(path)
    say(f"  {rows:,} OHLCV rows in {time.perf_counter() - started:.0f} s")
    return rows


# --- moto's S3 --------------------------------------------------------------------------------------------
@dataclass
class MotoServer:
    """moto's S3 HTTP server in a child process on a loopback port."""

    port: int
    proc: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _MOTO_CHILD, str(self.port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError("moto's S3 server did not start")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def s3_client(endpoint: str) -> object:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def empty_bucket(client: object, bucket: str) -> int:
    """Delete every object (moto keeps them in memory); returns how many there were."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
    found = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", [])]
    if found:
        client.delete_objects(Bucket=bucket, Delete={"Objects": found})  # type: ignore[attr-defined]
    return len(found)


# --- the database -----------------------------------------------------------------------------------------
def load_database(dsn: str, source: Path, say: Say) -> DbMode:
    """Schema, then tickers + ohlcv_data + technical_analysis through the migration's own loader."""
    with connect(dsn, autocommit=True) as c:
        mode = apply_schema(c).mode
    sconn = open_source(source)
    try:
        with connect(dsn) as pg:
            for t in migratable_tables():
                if t.name not in LOADED:
                    continue
                started = time.perf_counter()
                result = load_table(sconn, pg, t, SliceFilter(), run_id="bench-backup", mode=mode,
                                    progress=lambda _msg: None)
                say(f"  {t.name}: {result.loaded:,} rows loaded in {time.perf_counter() - started:.1f} s")
    finally:
        sconn.close()
    return mode


def settle_database(dsn: str, mode: DbMode, say: Say) -> None:
    """What production's policies would have done by the night of a backup: aggregates refreshed, old chunks
    compressed (TimescaleDB), then VACUUM ANALYZE. Run once here, because the cluster's background jobs are
    off so nothing changes the database between the timed runs."""
    started = time.perf_counter()
    with connect(dsn, autocommit=True) as c:
        if mode.timescaledb:
            views = [r[0] for r in c.execute("SELECT format('%I.%I', view_schema, view_name) "
                                              "FROM timescaledb_information.continuous_aggregates")]
            for view in views:
                c.execute("CALL refresh_continuous_aggregate(%s::regclass, NULL, NULL)", (view,))
            jobs = [r[0] for r in c.execute("SELECT job_id FROM timescaledb_information.jobs "
                                             "WHERE proc_name = 'policy_compression' ORDER BY job_id")]
            for job in jobs:
                c.execute("CALL run_job(%s)", (job,))
            chunks = c.execute("SELECT count(*) FILTER (WHERE is_compressed), count(*) "
                               "FROM timescaledb_information.chunks").fetchone()
            say(f"  {len(views)} continuous aggregates refreshed; {len(jobs)} compression policies run: "
                f"{chunks[0]} of {chunks[1]} chunks compressed")
        else:
            views = [tuple(r) for r in c.execute("SELECT schemaname, matviewname FROM pg_matviews")]
            for schema, name in views:
                c.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier(schema, name)))
            say(f"  {len(views)} materialized views refreshed")
        c.execute("VACUUM ANALYZE")
        c.execute("CHECKPOINT")
    say(f"  aggregates/compression/VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")


@dataclass(frozen=True)
class DbFacts:
    """What was backed up."""

    size_bytes: int
    mode: str
    pg_version: str
    tsdb_version: str | None
    rows: dict[str, int]
    settings: dict[str, str]


def db_facts(dsn: str) -> DbFacts:
    with connect(dsn, autocommit=True) as c:
        mode = detect_mode(c)
        size = int(c.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        rows = {t: int(c.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", t)))
                       .fetchone()[0]) for t in LOADED}
        settings = {n: str(c.execute(sql.SQL("SHOW {}").format(sql.Identifier(n))).fetchone()[0])
                    for n in ("fsync", "shared_buffers")}
    return DbFacts(size, mode.name, mode.pg_version, mode.tsdb_version, rows, settings)

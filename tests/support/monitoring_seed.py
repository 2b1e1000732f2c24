"""A database seeded for the monitoring query tests: one per mode, with the
monitoring role (monitoring/postgres/create_monitoring_role.sql, run with psql as compose runs it).

The seed writes what the DAGs write (ops.backups, ops.quality_results, ...) plus a few OHLCV bars per
region, and remembers what it wrote so the tests compute every expected value from it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg
import pytest

from pgcluster import PG_BIN
from quantdbops.io.pg import connect
from quantdbops.registry import OHLCV_DATA
from quantdbops.schema.apply import apply_schema
from quantdbops.schema.partitions import ensure_partitions
from support.monitoring import ROLE_FILE

MONITOR_ROLE = "quant_monitor"
MONITOR_PASSWORD = "monitor-test-password"


@dataclass(frozen=True)
class Bar:
    ticker: str
    region: str
    day: date


@dataclass(frozen=True)
class Backup:
    status: str
    started_at: datetime
    size_bytes: int | None


@dataclass(frozen=True)
class QualityRow:
    run_id: str
    check_name: str
    table_name: str
    region: str
    severity: str
    violation_count: int
    checked_at: datetime

    @property
    def key(self) -> tuple[str, str, str]:
        return self.check_name, self.table_name, self.region


@dataclass
class Seeded:
    """A database of one mode with the schema, the monitoring role and the seed; what was written."""

    mode: str
    dsn: str  # superuser
    monitor_dsn: str  # quant_monitor, as the exporter and Grafana log in
    today: date  # today in Asia/Seoul, as the database sees it
    now: datetime
    tickers: dict[str, int] = field(default_factory=dict)  # region -> tickers
    bars: list[Bar] = field(default_factory=list)
    backups: list[Backup] = field(default_factory=list)
    quality: list[QualityRow] = field(default_factory=list)


def monitor_dsn(dsn: str) -> str:
    parts = dict(p.split("=", 1) for p in dsn.split())
    parts.update(user=MONITOR_ROLE, password=MONITOR_PASSWORD)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def apply_monitoring_role(dsn: str) -> subprocess.CompletedProcess[str]:
    """Run the role file with psql, as the compose service `monitoring-roles` does."""
    parts = dict(p.split("=", 1) for p in dsn.split())
    env = {**os.environ, "QUANT_MONITOR_PASSWORD": MONITOR_PASSWORD, "PGOPTIONS": "-c client_min_messages=warning"}
    return subprocess.run(
        [str(PG_BIN / "psql"), "-X", "-q", "-h", parts["host"], "-p", parts["port"], "-U", parts["user"],
         "-d", parts["dbname"], "-f", str(ROLE_FILE)],
        env=env, capture_output=True, text=True, check=False)


# --- the seed ------------------------------------------------------------------------------------------


def _insert_tickers(conn: psycopg.Connection, seeded: Seeded) -> None:
    seeded.tickers = {"KR": 3, "US": 2, "JP": 1}  # JP: listed, but no bar yet
    for region, count in seeded.tickers.items():
        for n in range(count):
            conn.execute(
                "INSERT INTO public.tickers (ticker, region, name, exchange, currency, asset_type, created_at,"
                " last_updated) VALUES (%s, %s, %s, 'X', 'KRW', 'STOCK', now(), now())",
                (f"{region}{n:03d}", region, f"{region} ticker {n}"))


def _insert_bars(conn: psycopg.Connection, seeded: Seeded) -> None:
    # KR: four months up to two days ago; US: up to ten days ago; one KR bar in the future, which no
    # freshness reading may take as "newest" (a bad date must not hide stale data).
    kr_days = [seeded.today - timedelta(days=d) for d in range(2, 122, 3)]
    us_days = [seeded.today - timedelta(days=d) for d in range(10, 40, 7)]
    future = seeded.today + timedelta(days=5)
    bars = [Bar(f"KR{n:03d}", "KR", d) for n in range(3) for d in kr_days]
    bars += [Bar(f"US{n:03d}", "US", d) for n in range(2) for d in us_days]
    bars.append(Bar("KR000", "KR", future))
    if seeded.mode == "postgresql":
        ensure_partitions(conn, OHLCV_DATA, min(b.day for b in bars), max(b.day for b in bars))
    with conn.cursor().copy(
        "COPY public.ohlcv_data (ticker, region, date, timeframe, open, high, low, close, volume, created_at)"
        " FROM STDIN"
    ) as copy:
        for b in bars:
            copy.write_row((b.ticker, b.region, b.day, "D", 10, 12, 9, 11, 1000, seeded.now))
    seeded.bars = bars


def _insert_backups(conn: psycopg.Connection, seeded: Seeded) -> None:
    hours = timedelta(hours=1)
    seeded.backups = [
        Backup("deleted", seeded.now - 40 * 24 * hours, 900),
        Backup("verified", seeded.now - 30 * hours, 1_000),
        Backup("uploaded", seeded.now - 6 * hours, 2_000),
        Backup("failed", seeded.now - 1 * hours, None),
    ]
    for n, b in enumerate(seeded.backups):
        conn.execute(
            "INSERT INTO ops.backups (run_id, status, s3_key, size_bytes, duration_s, verified, started_at,"
            " finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (f"scheduled__{n}", b.status, f"quant_platform/{n}.dump", b.size_bytes, 12.5 + n,
             b.status == "verified", b.started_at, b.started_at + timedelta(minutes=5)))


def _insert_quality(conn: psycopg.Connection, seeded: Seeded) -> None:
    older, newer = seeded.now - timedelta(days=2), seeded.now - timedelta(hours=3)
    seeded.quality = [
        QualityRow("scheduled__old", "duplicates", "ohlcv_data", "KR", "error", 5, older),
        QualityRow("scheduled__old", "missing_dates", "ohlcv_data", "US", "warning", 70, older),
        QualityRow("scheduled__old", "freshness", "ohlcv_data", "JP", "error", 1, older),
        QualityRow("scheduled__new", "duplicates", "ohlcv_data", "KR", "error", 2, newer),
        QualityRow("scheduled__new", "missing_dates", "ohlcv_data", "US", "warning", 0, newer),
        QualityRow("scheduled__new", "duplicates", "tickers", "US", "error", 0, newer),
    ]
    for q in seeded.quality:
        conn.execute(
            "INSERT INTO ops.quality_results (run_id, check_name, region, table_name, severity, violation_count,"
            " threshold, passed, checked_at) VALUES (%s, %s, %s, %s, %s, %s, NULL, %s, %s)",
            (q.run_id, q.check_name, q.region, q.table_name, q.severity, q.violation_count,
             q.violation_count == 0, q.checked_at))


def _insert_run_history(conn: psycopg.Connection, seeded: Seeded) -> None:
    """Rows the maintenance and migration panels read."""
    conn.execute(
        "INSERT INTO ops.maintenance_log (run_id, action, object_name, status, duration_s, message, logged_at)"
        " VALUES ('scheduled__m', 'vacuum_analyze', 'public.ohlcv_data', 'done', 1.5, 'dead tuples 120 -> 0', %s)",
        (seeded.now - timedelta(hours=20),))
    conn.execute(
        "INSERT INTO ops.migration_runs (run_id, table_name, region, status, source_rows, loaded_rows,"
        " rejected_rows, seconds, rows_per_sec, started_at, finished_at)"
        " VALUES ('manual__1', 'ohlcv_data', 'KR', 'success', %s, %s, 0, 2.0, 60, %s, %s)",
        (len(seeded.bars), len(seeded.bars), seeded.now - timedelta(days=1),
         seeded.now - timedelta(days=1) + timedelta(seconds=2)))


def seed(conn: psycopg.Connection, seeded: Seeded) -> None:
    _insert_tickers(conn, seeded)
    _insert_bars(conn, seeded)
    _insert_backups(conn, seeded)
    _insert_quality(conn, seeded)
    _insert_run_history(conn, seeded)
    conn.execute("ANALYZE")


def seeded_database(request: pytest.FixtureRequest) -> Iterator[Seeded]:
    """Role first, then schema (the compose order: monitoring-roles runs before the migration DAG)."""
    mode = request.param
    cluster = request.getfixturevalue("tsdb_cluster" if mode == "timescaledb" else "plain_cluster")
    name = f"mon_{uuid.uuid4().hex[:12]}"
    cluster.createdb(name)
    dsn = cluster.dsn(name)
    result = apply_monitoring_role(dsn)
    assert result.returncode == 0, result.stderr
    with connect(dsn, autocommit=True) as conn:
        apply_schema(conn)
        today, now = conn.execute("SELECT (now() AT TIME ZONE 'Asia/Seoul')::date, now()").fetchone()
        seeded = Seeded(mode, dsn, monitor_dsn(dsn), today, now)
        seed(conn, seeded)
    yield seeded
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

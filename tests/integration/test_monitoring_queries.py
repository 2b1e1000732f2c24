"""Every SQL of the monitoring stack on a real PostgreSQL 15, in both modes, as the read-only role.

postgres_exporter's custom queries (monitoring/postgres-exporter/queries.yaml) and the Grafana dashboard's
SQL panels run exactly as written (Grafana macros expanded as Grafana expands them), logged in as
``quant_monitor`` after the role file ran before the schema existed, as in the compose stack. Values are
checked against what the seed wrote (tests/support/monitoring_seed.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from quantdbops.registry import OHLCV_DATA, TABLES
from support.harness import MODES
from support.monitoring import (
    dashboard,
    declared_columns,
    exporter_queries,
    render_grafana_sql,
    sql_targets,
)
from support.monitoring_seed import (
    MONITOR_ROLE,
    Seeded,
    apply_monitoring_role,
    monitor_dsn,
    seeded_database,
)

NAMESPACES = [pytest.param(name, id=name) for name in exporter_queries()]
SQL_TARGETS = [pytest.param(where, target, id=re.sub(r"\W+", "-", where).strip("-"))
               for where, target in sql_targets(dashboard())]
# Seconds of slack between the seed's now() and the exporter query's now() (same database clock).
CLOCK_SLACK_S = 300


@pytest.fixture(scope="module", params=MODES)
def seeded(request: pytest.FixtureRequest) -> Iterator[Seeded]:
    yield from seeded_database(request)


@pytest.fixture
def monitor(seeded: Seeded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(seeded.monitor_dsn) as conn:
        yield conn


def export(conn: psycopg.Connection, namespace: str) -> list[dict[str, Any]]:
    """The rows of one exporter namespace, as dicts."""
    cur = conn.execute(exporter_queries()[namespace]["query"])
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def by(rows: list[dict[str, Any]], *labels: str) -> dict[Any, dict[str, Any]]:
    key = (lambda r: r[labels[0]]) if len(labels) == 1 else (lambda r: tuple(r[label] for label in labels))
    return {key(r): r for r in rows}


def number(value: Any) -> float:
    return float(value) if value is not None else math.nan


# --- the role ------------------------------------------------------------------------------------------


def test_role_is_read_only_and_limited(seeded: Seeded, monitor: psycopg.Connection) -> None:
    settings = dict(monitor.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN ('default_transaction_read_only',"
        " 'statement_timeout')").fetchall())
    assert settings == {"default_transaction_read_only": "on", "statement_timeout": "15000"}
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        monitor.execute("DELETE FROM ops.backups")


def test_role_file_is_idempotent(seeded: Seeded) -> None:
    again = apply_monitoring_role(seeded.dsn)
    assert again.returncode == 0, again.stderr
    with psycopg.connect(seeded.dsn) as conn:
        members = {r[0] for r in conn.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
            " JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s", (MONITOR_ROLE,))}
    assert members == {"pg_monitor", "quant_readonly"}


# --- exporter queries: shape ---------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_exporter_query_returns_the_declared_columns(
    seeded: Seeded, monitor: psycopg.Connection, namespace: str
) -> None:
    spec = exporter_queries()[namespace]
    cur = monitor.execute(spec["query"])
    assert [d.name for d in cur.description] == list(declared_columns(spec))
    rows = cur.fetchall()
    assert rows, f"{namespace} returned no row on the seeded database"
    usages = list(declared_columns(spec).values())
    for row in rows:
        for value, usage in zip(row, usages, strict=True):
            if usage == "LABEL":
                assert isinstance(value, str), (namespace, row)
            else:
                # What postgres_exporter turns into a float: numbers, and NULL as NaN.
                assert value is None or isinstance(value, int | float | Decimal), (namespace, row)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_exporter_series_are_unique(seeded: Seeded, monitor: psycopg.Connection, namespace: str) -> None:
    # Two rows with the same label values would make the exporter emit a duplicate series (scrape error).
    labels = [c for c, usage in declared_columns(exporter_queries()[namespace]).items() if usage == "LABEL"]
    keys = [tuple(r[c] for c in labels) for r in export(monitor, namespace)]
    assert len(keys) == len(set(keys))


def test_freshness_reads_ohlcv_through_indexes(seeded: Seeded) -> None:
    # With sequential scans priced out, a sargable query has no Seq Scan left on the OHLCV table, its
    # chunks or its partitions (the cost of the scrape must not grow with the table).
    ohlcv_relations = {OHLCV_DATA.name}
    with psycopg.connect(seeded.dsn) as conn:
        ohlcv_relations |= {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'public.ohlcv_data'::regclass")}
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute("EXPLAIN (FORMAT JSON) " + exporter_queries()["quant_ohlcv_freshness"]["query"]
                            ).fetchone()[0][0]["Plan"]
    nodes, stack = [], [plan]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    scanned = {n.get("Relation Name") for n in nodes}
    assert scanned & ohlcv_relations, "the plan does not read ohlcv_data at all"
    seq = [n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan" and n["Relation Name"] in ohlcv_relations]
    assert not seq, f"sequential scans on {seq}"


# --- exporter queries: values --------------------------------------------------------------------------


def test_schema_mode(seeded: Seeded, monitor: psycopg.Connection) -> None:
    (row,) = export(monitor, "quant_schema")
    assert row["mode"] == seeded.mode
    assert row["timescaledb"] == (seeded.mode == "timescaledb")
    assert bool(row["timescaledb_version"]) == (seeded.mode == "timescaledb")


def test_freshness_per_region(seeded: Seeded, monitor: psycopg.Connection) -> None:
    rows = by(export(monitor, "quant_ohlcv_freshness"), "region")
    assert {region: r["tickers"] for region, r in rows.items()} == seeded.tickers
    for region in seeded.tickers:
        past = [b.day for b in seeded.bars if b.region == region and b.day <= seeded.today]
        row = rows[region]
        if past:
            newest = max(past)
            assert row["age_days"] == (seeded.today - newest).days
            # Unix time of the date's midnight, as a date without a time zone reads it.
            assert number(row["newest_date_seconds"]) == (newest - date(1970, 1, 1)).days * 86400
        else:
            assert row["age_days"] == math.inf, f"{region} has tickers but no bar: its age must be +Inf"
            assert row["newest_date_seconds"] is None


def test_quality_keeps_the_newest_result_per_check(seeded: Seeded, monitor: psycopg.Connection) -> None:
    rows = by(export(monitor, "quant_quality"), "check", "table", "region")
    newest = {}
    for q in sorted(seeded.quality, key=lambda q: q.checked_at):
        newest[q.key] = q
    assert set(rows) == set(newest)
    for key, q in newest.items():
        assert rows[key]["violations"] == q.violation_count, key
        assert rows[key]["passed"] == (q.violation_count == 0), key
        assert rows[key]["check_severity"] == q.severity
        assert number(rows[key]["checked_timestamp_seconds"]) == pytest.approx(q.checked_at.timestamp())


def test_quality_runs(seeded: Seeded, monitor: psycopg.Connection) -> None:
    (row,) = export(monitor, "quant_quality_runs")
    assert row["runs"] == len({q.run_id for q in seeded.quality})
    expected = (seeded.now - max(q.checked_at for q in seeded.quality)).total_seconds()
    assert expected <= number(row["last_result_age_seconds"]) < expected + CLOCK_SLACK_S


def test_backup_age_and_counts(seeded: Seeded, monitor: psycopg.Connection) -> None:
    (row,) = export(monitor, "quant_backup")
    good = [b for b in seeded.backups if b.status in ("uploaded", "verified")]
    newest = max(good, key=lambda b: b.started_at)
    verified = max(b.started_at for b in seeded.backups if b.status == "verified")
    expected_age = (seeded.now - newest.started_at).total_seconds()
    assert expected_age <= number(row["last_success_age_seconds"]) < expected_age + CLOCK_SLACK_S
    assert number(row["last_success_timestamp_seconds"]) == pytest.approx(newest.started_at.timestamp())
    assert row["last_success_size_bytes"] == newest.size_bytes
    expected_verified = (seeded.now - verified).total_seconds()
    assert expected_verified <= number(row["last_verified_age_seconds"]) < expected_verified + CLOCK_SLACK_S
    assert row["failed_since_success"] == sum(
        1 for b in seeded.backups if b.status == "failed" and b.started_at > newest.started_at)
    assert row["available"] == len(good)


def test_backup_age_is_infinite_without_any_good_backup(seeded: Seeded, monitor: psycopg.Connection) -> None:
    with psycopg.connect(seeded.dsn) as conn:  # one transaction, rolled back: the seed stays as it was
        conn.execute("UPDATE ops.backups SET status = 'failed' WHERE status IN ('uploaded', 'verified')")
        conn.execute(f"SET ROLE {MONITOR_ROLE}")
        (row,) = export(conn, "quant_backup")
        conn.rollback()
    assert row["last_success_age_seconds"] == math.inf
    assert row["last_verified_age_seconds"] == math.inf
    assert row["last_success_timestamp_seconds"] is None
    assert row["available"] == 0
    assert row["failed_since_success"] == sum(1 for b in seeded.backups if b.status != "deleted")


def test_table_sizes_and_rows(seeded: Seeded, monitor: psycopg.Connection) -> None:
    rows = by(export(monitor, "quant_table"), "table")
    assert set(rows) == {t.name for t in TABLES}
    assert rows["ohlcv_data"]["rows_estimate"] == len(seeded.bars)  # ANALYZE ran after the seed
    assert rows["tickers"]["rows_estimate"] == sum(seeded.tickers.values())
    # All chunks or partitions are counted: more than the (empty) parent and its own indexes alone.
    with psycopg.connect(seeded.dsn) as conn:
        parent_only = conn.execute("SELECT pg_total_relation_size('public.ohlcv_data')").fetchone()[0]
    assert rows["ohlcv_data"]["size_bytes"] > parent_only


def test_chunks_per_table(seeded: Seeded, monitor: psycopg.Connection) -> None:
    rows = by(export(monitor, "quant_hypertable"), "table")
    assert set(rows) == {t.name for t in TABLES if t.partitioned}
    with psycopg.connect(seeded.dsn) as conn:
        # Counted another way: TimescaleDB's show_chunks(), or the partition tree of the parent.
        expected = conn.execute(
            "SELECT count(*) FROM show_chunks('public.ohlcv_data')" if seeded.mode == "timescaledb" else
            "SELECT count(*) FROM pg_partition_tree('public.ohlcv_data') WHERE isleaf").fetchone()[0]
    assert rows["ohlcv_data"]["chunks"] == expected
    months = {(b.day.year, b.day.month) for b in seeded.bars}
    assert expected >= (len(months) - 1 if seeded.mode == "timescaledb" else len(months))
    if seeded.mode == "timescaledb":
        for table in TABLES:
            if table.partitioned:
                assert rows[table.name]["compression_enabled"] == (table.compression is not None), table.name
                assert rows[table.name]["compression_policies"] == (table.compression is not None), table.name
        assert rows["ohlcv_data"]["compressed_chunks"] == 0
    else:
        assert all(r["compression_enabled"] is None and r["compressed_chunks"] is None for r in rows.values())


def test_index_io_is_summed_into_the_parent_table(seeded: Seeded, monitor: psycopg.Connection) -> None:
    with psycopg.connect(seeded.dsn) as conn:
        before = by(export(conn, "quant_table_io"), "table")["ohlcv_data"]
        # An index lookup per region, then the statistics flushed (at the next idle point, which the
        # last SELECT proves was passed) for the next session to see.
        conn.execute("SET enable_seqscan = off")
        for region in seeded.tickers:
            conn.execute("SELECT max(date) FROM public.ohlcv_data WHERE region = %s", (region,)).fetchone()
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.commit()
        conn.execute("SELECT 1").fetchone()
    after = by(export(monitor, "quant_table_io"), "table")["ohlcv_data"]
    assert after["idx_blks_hit"] + after["idx_blks_read"] > before["idx_blks_hit"] + before["idx_blks_read"]
    assert after["idx_hit_ratio"] == pytest.approx(
        after["idx_blks_hit"] / (after["idx_blks_hit"] + after["idx_blks_read"]))


def test_slow_statements(seeded: Seeded, monitor: psycopg.Connection) -> None:
    before = export(monitor, "quant_slow_statements")[0]
    with psycopg.connect(seeded.dsn) as conn:
        conn.execute("SELECT pg_sleep(1.05) /* monitoring test: one statement slower than 1 s */")
    after = export(monitor, "quant_slow_statements")[0]
    assert after["statements"] == before["statements"] + 1
    assert after["max_mean_seconds"] >= 1.05


# --- TimescaleDB compression (its own database: compressing changes the chunks the others count) -----------


@pytest.mark.timescaledb
@pytest.mark.parametrize("mode", [pytest.param("timescaledb", id="timescaledb")])
def test_compressed_chunks_are_counted(mode: str, schema_conn: psycopg.Connection, pg_dsn: str) -> None:
    assert apply_monitoring_role(pg_dsn).returncode == 0
    today = schema_conn.execute("SELECT (now() AT TIME ZONE 'Asia/Seoul')::date").fetchone()[0]
    days = [today - timedelta(days=d) for d in range(0, 200, 10)]
    with schema_conn.cursor().copy(
        "COPY public.ohlcv_data (ticker, region, date, timeframe, open, high, low, close, volume, created_at)"
        " FROM STDIN") as copy:
        for day in days:
            copy.write_row(("005930", "KR", day, "D", 10, 12, 9, 11, 1000, "2025-01-01"))
    chunks = [r[0] for r in schema_conn.execute(
        "SELECT c::text FROM show_chunks('public.ohlcv_data') AS c ORDER BY 1")]
    to_compress = chunks[: len(chunks) // 2]
    for chunk in to_compress:
        schema_conn.execute("SELECT compress_chunk(%s::regclass)", (chunk,))
    with psycopg.connect(monitor_dsn(pg_dsn)) as monitor:
        rows = by(export(monitor, "quant_hypertable"), "table")
        assert rows["ohlcv_data"]["chunks"] == len(chunks)
        assert rows["ohlcv_data"]["compressed_chunks"] == len(to_compress)
        # Compressed data moved out of the chunk tables and is still counted in the size.
        sizes = by(export(monitor, "quant_table"), "table")
    total = schema_conn.execute("SELECT hypertable_size('public.ohlcv_data')").fetchone()[0]
    assert sizes["ohlcv_data"]["size_bytes"] == total


# --- the dashboard's SQL ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "target"), SQL_TARGETS)
def test_dashboard_sql_runs_and_returns_rows(
    seeded: Seeded, monitor: psycopg.Connection, where: str, target: dict[str, Any]
) -> None:
    # The dashboard's time range around the seed: from before the oldest row to after now.
    start, end = seeded.now - timedelta(days=60), seeded.now + timedelta(hours=1)
    monitor.execute("SELECT 1 /* make pg_stat_statements non-empty */").fetchone()
    cur = monitor.execute(render_grafana_sql(target["rawSql"], start, end))
    names = [d.name for d in cur.description]
    rows = cur.fetchall()
    assert rows, f"{where}: no rows on the seeded database"
    if target.get("format") == "time_series":
        assert "time" in names, f"{where}: a time series needs a `time` column, got {names}"

"""`make bench` (quality): every data-quality check on >= 10,000,000 OHLCV rows, whole history and 30-day window.

    python scripts/bench_quality.py                       # .local/bench/quality_10m.db: 6 x 2000 tickers x 840 days
    python scripts/bench_quality.py --explain-region US   # the EXPLAIN section for another region

1. The sample (``quantdbops.sample.generate``, no planted defects) is generated only if the SQLite file or its
   manifest is missing.
2. A throw-away PostgreSQL 15 cluster (fsync off; TimescaleDB where installed) under
   ``.local/bench/pg-quality`` receives ``tickers`` and ``ohlcv_data`` through the migration's own
   ``load_table`` (default producer processes), then VACUUM ANALYZE; skipped when the target already holds
   exactly the manifest's rows (the cluster directory is kept between runs).
3. Every check (``quantdbops.quality.runner.run_check``, what the DAG's tasks run) is timed for the whole
   history (``lookback_days=0``) and for the default 30-day window, as of the sample's last day.
4. For the 30-day window, every query the checks send for ``ohlcv_data`` in one region (their SQL files and the
   common-sql provider operators' generated SQL) is run under EXPLAIN (ANALYZE, BUFFERS): rows the scans read
   against the table's rows, and buffers touched against the table's heap pages. Two plans are printed whole.

The cluster is stopped at the end. Nothing is asserted: the figures are printed (timings depend on the machine
and on what else runs on it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "scripts")]

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from pgcluster import Cluster, free_port  # noqa: E402
from quantdbops.io.pg import connect  # noqa: E402
from quantdbops.migration.load import default_workers, load_table  # noqa: E402
from quantdbops.migration.plan import SliceFilter  # noqa: E402
from quantdbops.migration.source import open_source  # noqa: E402
from quantdbops.quality.checks import CHECK_NAMES, check, ticker_column  # noqa: E402
from quantdbops.quality.params import QualityRequest  # noqa: E402
from quantdbops.quality.runner import (  # noqa: E402
    ALL_REGIONS,
    PROVIDER_CHECKS,
    compose,
    provider_operators,
    run_check,
)
from quantdbops.registry import OHLCV_DATA, TICKERS  # noqa: E402
from quantdbops.report import format_table  # noqa: E402
from quantdbops.sample import generate  # noqa: E402
from quantdbops.schema.apply import apply_schema  # noqa: E402
from quantdbops.schema.partitions import ensure_partitions  # noqa: E402

LOCAL = REPO / ".local" / "bench"
PRINTED_PLANS = ("price_anomalies", "ohlcv_rules (QualityTableCheckOperator)")


def say(msg: str) -> None:
    print(msg, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=LOCAL / "quality_10m.db", help="SQLite sample (made if missing)")
    parser.add_argument("--tickers-per-region", type=int, default=2000)
    parser.add_argument("--days", type=int, default=840)
    parser.add_argument("--cluster", type=Path, default=LOCAL / "pg-quality", help="cluster directory (kept)")
    parser.add_argument("--explain-region", default="KR")
    return parser.parse_args(argv)


def ensure_sample(db: Path, tickers: int, days: int) -> dict[str, Any]:
    manifest_path = db.with_name(db.name + ".manifest.json")
    if db.exists() and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        say(f"sample: reusing {db} ({manifest['row_counts']['ohlcv_data']:,} OHLCV rows)")
        return manifest
    db.parent.mkdir(parents=True, exist_ok=True)
    say(f"sample: generating {db} ({tickers} tickers per region x {days} days) ...")
    started = time.perf_counter()
    manifest = generate(db, tickers_per_region=tickers, days=days)
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    say(f"sample: {manifest['row_counts']['ohlcv_data']:,} OHLCV rows in {time.perf_counter() - started:.0f} s")
    return manifest


def _count(dsn: str, table: str) -> int:
    with connect(dsn, autocommit=True) as pg:
        return pg.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table))).fetchone()[0]


def ensure_loaded(dsn: str, db: Path, manifest: dict[str, Any]) -> None:
    """Schema, tickers and ohlcv_data as the migration loads them; skipped when the rows are all there."""
    with connect(dsn, autocommit=True) as pg:
        mode = apply_schema(pg).mode
    wanted = {t.name: manifest["row_counts"][t.name] for t in (TICKERS, OHLCV_DATA)}
    if all(_count(dsn, name) == rows for name, rows in wanted.items()):
        say(f"target: reusing the loaded tables ({mode.describe()}): "
            + ", ".join(f"{name} {rows:,}" for name, rows in wanted.items()))
        return
    producers = default_workers(server_shares_cores=True)  # what load_table picks for this local cluster
    say(f"target: loading tickers and ohlcv_data ({mode.describe()}, {producers} producer processes) ...")
    sconn = open_source(db)
    try:
        if not mode.timescaledb and OHLCV_DATA.partitioned:
            first, last = sconn.execute("SELECT min(date), max(date) FROM ohlcv_data").fetchone()
            with connect(dsn, autocommit=True) as pg:
                ensure_partitions(pg, OHLCV_DATA, date.fromisoformat(first), date.fromisoformat(last))
        for table in (TICKERS, OHLCV_DATA):
            started = time.perf_counter()
            with connect(dsn) as pg:
                result = load_table(sconn, pg, table, SliceFilter(), run_id=f"bench-quality-{table.name}", mode=mode,
                                    progress=lambda _msg: None, workers=None)
            say(f"target: {table.name} {result.loaded:,} rows in {time.perf_counter() - started:.0f} s")
    finally:
        sconn.close()
    started = time.perf_counter()
    with connect(dsn, autocommit=True) as pg:
        pg.execute("VACUUM (ANALYZE) public.tickers")
        pg.execute("VACUUM (ANALYZE) public.ohlcv_data")
    say(f"target: VACUUM ANALYZE in {time.perf_counter() - started:.0f} s")


def single_pass_seconds(pg: psycopg.Connection, name: str, request: QualityRequest) -> float:
    """A provider-decided check's own SQL file (one pass: count and samples) over the same tables and regions:
    what the check cost before the provider's operators decided it (they read the scope once per column/rule)."""
    qc = check(name)
    started = time.perf_counter()
    for t in qc.tables:
        for region in request.regions if t.has_region else (ALL_REGIONS,):
            pg.execute(compose(qc, t), request.sql_params(region)).fetchall()
    return time.perf_counter() - started


def time_checks(dsn: str, request: QualityRequest) -> tuple[list[tuple], float]:
    rows, total = [], 0.0
    with connect(dsn, autocommit=True) as pg:
        for name in CHECK_NAMES:
            started = time.perf_counter()
            results = run_check(pg, name, request)
            seconds = time.perf_counter() - started
            total += seconds
            single = f"{single_pass_seconds(pg, name, request):.2f}" if name in PROVIDER_CHECKS else ""
            rows.append((name, check(name).severity.value, "common-sql" if name in PROVIDER_CHECKS else "SQL file",
                         len(results), sum(r.violation_count for r in results), f"{seconds:.2f}", single))
    return rows, total


# --- EXPLAIN of the window queries --------------------------------------------------------------------------
def ohlcv_queries(pg: psycopg.Connection, request: QualityRequest, region: str) -> list[tuple[str, Any, dict]]:
    """(label, query, params) of every query the checks send for ohlcv_data in one region."""
    params = request.sql_params(region)
    out: list[tuple[str, Any, dict]] = []
    for name in CHECK_NAMES:
        qc = check(name)
        if OHLCV_DATA not in qc.tables:
            continue
        if name in PROVIDER_CHECKS:
            for op in provider_operators(qc, OHLCV_DATA, request, region, pg):
                out.append((f"{name} ({type(op).__name__})", op.sql, {}))
                # only when a provider check fails does the SQL file run (sample rows): explained too
            out.append((f"{name} (samples, on failure)", compose(qc, OHLCV_DATA), params))
        elif name == "referential":
            out.append((name, compose(qc, OHLCV_DATA, ticker_column(OHLCV_DATA), False), params))
        else:
            out.append((name, compose(qc, OHLCV_DATA), params))
    return out


def _nodes(plan: dict) -> list[dict]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


def _rows_read(plan: dict) -> int:
    """Rows the relation scans produced or filtered out (TimescaleDB's ChunkAppend reads nothing itself)."""
    total = 0.0
    for n in _nodes(plan):
        if "Relation Name" in n and n["Node Type"] != "Custom Scan":
            removed = n.get("Rows Removed by Filter", 0) + n.get("Rows Removed by Index Recheck", 0)
            total += (n.get("Actual Rows", 0) + removed) * n.get("Actual Loops", 1)
    return round(total)


def table_pages(pg: psycopg.Connection) -> int:
    """Heap pages of ohlcv_data with its chunks or partitions (inheritance children, recursively)."""
    return pg.execute(
        "WITH RECURSIVE tree(oid) AS (SELECT 'public.ohlcv_data'::regclass::oid UNION ALL "
        "SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid) "
        "SELECT sum(pg_relation_size(oid)) / current_setting('block_size')::int FROM tree").fetchone()[0]


def explain_window(dsn: str, request: QualityRequest, region: str, table_rows: int) -> None:
    with connect(dsn, autocommit=True) as pg:
        pages = int(table_pages(pg))
        queries = ohlcv_queries(pg, request, region)
        rows, texts = [], {}
        for label, query, params in queries:
            prefix = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
            q = sql.SQL(prefix) + query if isinstance(query, sql.Composable) else prefix + query
            top = pg.execute(q, params).fetchone()[0][0]
            plan = top["Plan"]
            read = _rows_read(plan)
            buffers = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
            scans = sorted({n["Node Type"] for n in _nodes(plan) if "Relation Name" in n and
                            n["Node Type"] != "Custom Scan"})
            rows.append((label, f"{read:,}", f"{read / table_rows:.4%}", f"{buffers:,}", f"{buffers / pages:.2%}",
                         f"{top['Execution Time'] / 1000:.2f}", ", ".join(scans)))
            if label in PRINTED_PLANS:
                tq = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + query if isinstance(query, sql.Composable) \
                    else "EXPLAIN (ANALYZE, BUFFERS) " + query
                texts[label] = (label, "\n".join(r[0] for r in pg.execute(tq, params).fetchall()))
    say(format_table(["query (ohlcv_data, " + region + ")", "rows read", "of table rows", "buffers",
                      "of heap pages", "seconds", "scan nodes"], rows,
                     title=f"30-day window, EXPLAIN (ANALYZE, BUFFERS): table {table_rows:,} rows, "
                           f"{pages:,} heap pages (rows read and buffers count re-reads: the provider's column "
                           "check reads the window once per column)"))
    for label, text in texts.values():
        say(f"\nEXPLAIN (ANALYZE, BUFFERS) of {label}, {region}, 30-day window:\n{text}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # the provider operators log every record at INFO (the task log wants that, the benchmark does not)
    from airflow.sdk.log import configure_logging

    configure_logging(log_level="WARNING")
    manifest = ensure_sample(args.db.resolve(), args.tickers_per_region, args.days)
    cluster = Cluster(args.cluster.resolve(), free_port(), fsync=False, timescaledb=None)
    say(f"machine: {os.cpu_count()} cores (shared with other work: timings are indicative)")
    try:
        cluster.start()
        cluster.createdb()
        dsn = cluster.dsn()
        ensure_loaded(dsn, args.db.resolve(), manifest)
        table_rows = _count(dsn, OHLCV_DATA.name)
        as_of = date.fromisoformat(manifest["last_date"])
        for lookback in (0, 30):
            request = QualityRequest.from_params({"lookback_days": lookback}, default_as_of=as_of)
            rows, total = time_checks(dsn, request)
            rows.append(("total", "", "", sum(r[3] for r in rows), sum(r[4] for r in rows), f"{total:.2f}", ""))
            window = "whole history" if lookback == 0 else f"{lookback}-day window"
            say(format_table(["check", "severity", "decided by", "results", "violations", "seconds",
                              "its SQL file alone, s"], rows,
                             title=f"All checks, all {len(request.regions)} regions, {window} "
                                   f"({table_rows:,} OHLCV rows, as of {as_of})"))
        explain_window(dsn, QualityRequest.from_params({"lookback_days": 30}, default_as_of=as_of),
                       args.explain_region, table_rows)
    finally:
        cluster.stop()
        say(f"cluster stopped (data kept in {cluster.root})")
    return 0


if __name__ == "__main__":  # the loader starts producer processes
    sys.exit(main())

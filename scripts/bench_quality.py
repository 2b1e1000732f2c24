"""`make bench` (quality): every data-quality check on >= 10,000,000 OHLCV rows, whole history and 30-day window.

    python scripts/bench_quality.py                       # .local/bench/quality_10m.db: 6 x 2000 tickers x 840 days
    python scripts/bench_quality.py --explain-region US   # the EXPLAIN section for one region's request

1. The sample (``sample.generate``, no planted defects) is generated only if the SQLite file or its
   manifest is missing.
2. A throw-away PostgreSQL 15 cluster (fsync off; TimescaleDB where installed) under
   ``.local/bench/pg-quality`` receives ``tickers`` and ``ohlcv_data`` through the migration's own
   ``load_table`` (default producer processes), then VACUUM ANALYZE; skipped when the target already holds
   exactly the manifest's rows (the cluster directory is kept between runs).
3. The physical floor: one sequential scan of ``ohlcv_data`` reading a column (``count(close)``, in the checks'
   session settings; median of three).
4. Every check (``quantdbops.quality.runner.run_check``, what the DAG's tasks run, one after the other) is timed
   for the default 30-day window (three runs, the median reported: the first reads the window's chunks into
   the freshly started server's buffers, as a daily run finds them there) and for the whole history
   (``lookback_days=0``, one run), as of the sample's last day, and printed against the goals: the window in at
   most 1 s in total, the whole history in at most 30 s; the whole history also as a multiple of the floor.
   On this schema null_required and ohlcv_rules read nothing (the constraints prove them); what they cost where
   the constraints do not (NOT VALID, dropped) is timed apart, in a transaction rolled back.
5. For the 30-day window, every statement the checks send for ``ohlcv_data`` is run under EXPLAIN (ANALYZE,
   BUFFERS): rows the window's scans read against the table's rows, buffers they touched against the table's heap
   pages, and apart from them the index probes for each ticker's bar before the window. Two plans are printed
   whole.

The cluster is stopped at the end. Nothing is asserted: the figures are printed (timings depend on the machine
and on what else runs on it).
"""

from __future__ import annotations

import argparse
import os
import statistics
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
from quantdbops.migration.producer_pool import default_workers  # noqa: E402
from quantdbops.migration.source import open_source  # noqa: E402
from quantdbops.migration.source_plan import SliceFilter  # noqa: E402
from quantdbops.migration.target_load import load_table  # noqa: E402
from quantdbops.quality.checks import CHECK_NAMES, check  # noqa: E402
from quantdbops.quality.compose import compose  # noqa: E402
from quantdbops.quality.params import QualityRequest  # noqa: E402
from quantdbops.quality.runner import prepare_session, run_check  # noqa: E402
from quantdbops.registry import OHLCV_DATA, TICKERS  # noqa: E402
from quantdbops.report import format_table  # noqa: E402
from quantdbops.schema.apply import apply_schema  # noqa: E402
from quantdbops.schema.partitions import ensure_partitions  # noqa: E402
from sample import generate, read_manifest, write_manifest  # noqa: E402

LOCAL = REPO / ".local" / "bench"
GOAL_WHOLE_HISTORY_S = 30.0
GOAL_WINDOW_S = 1.0
PRINTED_PLANS = ("price_anomalies", "missing_dates")


def say(msg: str) -> None:
    print(msg, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=LOCAL / "quality_10m.db", help="SQLite sample (made if missing)")
    parser.add_argument("--tickers-per-region", type=int, default=2000)
    parser.add_argument("--days", type=int, default=840)
    parser.add_argument("--cluster", type=Path, default=LOCAL / "pg-quality", help="cluster directory (kept)")
    parser.add_argument("--explain-region", default=None,
                        help="EXPLAIN one region's request (default: every region, as the DAG runs)")
    return parser.parse_args(argv)


def ensure_sample(db: Path, tickers: int, days: int) -> dict[str, Any]:
    manifest = read_manifest(db)
    if manifest is not None:
        say(f"sample: reusing {db} ({manifest['row_counts']['ohlcv_data']:,} OHLCV rows)")
        return manifest
    db.parent.mkdir(parents=True, exist_ok=True)
    say(f"sample: generating {db} ({tickers} tickers per region x {days} days) ...")
    started = time.perf_counter()
    manifest = generate(db, tickers_per_region=tickers, days=days)
    write_manifest(manifest, db)
    say(f"sample: {manifest['row_counts']['ohlcv_data']:,} OHLCV rows in {time.perf_counter() - started:.0f} s")
    return manifest


def _count(dsn: str, table: str) -> int:
    with connect(dsn, autocommit=True) as pg:
        return pg.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table))).fetchone()[0]


def ensure_loaded(dsn: str, db: Path, manifest: dict[str, Any]) -> str:
    """Schema, tickers and ohlcv_data as the migration loads them; skipped when the rows are all there."""
    with connect(dsn, autocommit=True) as pg:
        mode = apply_schema(pg).mode
    wanted = {t.name: manifest["row_counts"][t.name] for t in (TICKERS, OHLCV_DATA)}
    if all(_count(dsn, name) == rows for name, rows in wanted.items()):
        say(f"target: reusing the loaded tables ({mode.describe()}): "
            + ", ".join(f"{name} {rows:,}" for name, rows in wanted.items()))
        return mode.describe()
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
    return mode.describe()


def floor_seconds(dsn: str) -> float:
    """One sequential scan of ohlcv_data that reads a column of every row, in the checks' session settings."""
    times = []
    with connect(dsn, autocommit=True) as pg:
        prepare_session(pg)
        for _ in range(3):
            started = time.perf_counter()
            pg.execute("SELECT count(close) FROM public.ohlcv_data").fetchone()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_checks(dsn: str, request: QualityRequest) -> tuple[list[tuple], float]:
    """Every check once, one after the other: a row per check and the total seconds."""
    rows, total = [], 0.0
    with connect(dsn, autocommit=True) as pg:
        for name in CHECK_NAMES:
            started = time.perf_counter()
            results = run_check(pg, name, request)
            seconds = time.perf_counter() - started
            total += seconds
            ohlcv = sum({r.table_name: r.seconds for r in results if r.table_name == OHLCV_DATA.name}.values())
            rows.append((name, check(name).severity.value, len({r.table_name for r in results}), len(results),
                         sum(r.violation_count for r in results), f"{seconds:.2f}",
                         f"{ohlcv:.2f}" if OHLCV_DATA in check(name).tables else ""))
    return rows, total


def report_checks(dsn: str, request: QualityRequest, goal: float, runs: int, what: str) -> float:
    """Time every check ``runs`` times, print the median run's table against the goal; its total seconds."""
    timed = sorted((time_checks(dsn, request) for _ in range(runs)), key=lambda rt: rt[1])
    rows, total = timed[len(timed) // 2]
    rows.append(("total", "", "", sum(r[3] for r in rows), sum(r[4] for r in rows), f"{total:.2f}", ""))
    runs_said = f"median of {runs} runs ({', '.join(f'{t:.2f}' for _, t in timed)} s)" if runs > 1 else "one run"
    say(format_table(["check", "severity", "tables", "results", "violations", "seconds", "of which ohlcv_data, s"],
                     rows, title=f"All checks, all {len(request.regions)} regions at once, {what}, {runs_said}: "
                                 f"{total:.2f} s, goal <= {goal:g} s: {'met' if total <= goal else 'MISSED'}"))
    return total


def unenforced_rules(dsn: str, request: QualityRequest) -> list[tuple[str, float]]:
    """null_required and ohlcv_rules where PostgreSQL does not enforce the rules (an older schema: the CHECKs
    re-added NOT VALID, NOT NULL dropped from the columns outside the key), in a transaction rolled back."""
    table = sql.Identifier("public", OHLCV_DATA.name)
    out = []
    with connect(dsn) as pg:
        for name, expr in OHLCV_DATA.checks:
            pg.execute(sql.SQL("ALTER TABLE {t} DROP CONSTRAINT {c}, ADD CONSTRAINT {c} CHECK ({e}) NOT VALID").format(
                t=table, c=sql.Identifier(name), e=sql.SQL(expr)))  # registry text
        for column in (c for c in OHLCV_DATA.required_columns if c not in OHLCV_DATA.key):
            pg.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(table, sql.Identifier(column)))
        for name in ("null_required", "ohlcv_rules"):
            started = time.perf_counter()
            run_check(pg, name, request)
            out.append((name, time.perf_counter() - started))
        pg.rollback()
    return out


# --- EXPLAIN of the window statements -----------------------------------------------------------------------
def _nodes(plan: dict) -> list[dict]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


def _scanned(node: dict) -> int:
    """Rows a relation scan produced or filtered out (TimescaleDB's ChunkAppend reads nothing itself)."""
    if "Relation Name" not in node or node["Node Type"] == "Custom Scan":
        return 0
    removed = node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
    return round((node.get("Actual Rows", 0) + removed) * node.get("Actual Loops", 1))


def _buffers(node: dict) -> int:
    return node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)


def split_reads(plan: dict) -> dict[str, int]:
    """Rows read and buffers touched by the statement's scans of its window, apart from its SubPlans (the probe
    for each ticker's bar before the window)."""
    out = {"rows": 0, "probe_rows": 0, "buffers": _buffers(plan), "probe_buffers": 0}

    def walk(node: dict, in_probe: bool) -> None:
        out["probe_rows" if in_probe else "rows"] += _scanned(node)
        for child in node.get("Plans", []):
            probe = child.get("Parent Relationship") == "SubPlan"
            if probe and not in_probe:
                out["probe_buffers"] += _buffers(child)
            walk(child, in_probe or probe)

    walk(plan, False)
    out["buffers"] -= out["probe_buffers"]
    return out


def table_pages(pg: psycopg.Connection) -> int:
    """Heap pages of ohlcv_data with its chunks or partitions (inheritance children, recursively)."""
    return pg.execute(
        "WITH RECURSIVE tree(oid) AS (SELECT 'public.ohlcv_data'::regclass::oid UNION ALL "
        "SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid) "
        "SELECT sum(pg_relation_size(oid)) / current_setting('block_size')::int FROM tree").fetchone()[0]


def explain_window(dsn: str, request: QualityRequest, table_rows: int) -> None:
    """Every statement the checks send for ohlcv_data over the window, under EXPLAIN (ANALYZE, BUFFERS)."""
    with connect(dsn, autocommit=True) as pg:
        prepare_session(pg)
        pages = int(table_pages(pg))
        rows, texts = [], {}
        for name in CHECK_NAMES:
            if OHLCV_DATA not in check(name).tables:
                continue
            query = compose(check(name), OHLCV_DATA, request)
            top = pg.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + query, request.sql_params(),
                             prepare=False).fetchone()[0][0]
            plan = top["Plan"]
            reads = split_reads(plan)
            scans = sorted({n["Node Type"] for n in _nodes(plan) if "Relation Name" in n and
                            n["Node Type"] != "Custom Scan"})
            rows.append((name, f"{reads['rows']:,}", f"{reads['rows'] / table_rows:.2%}", f"{reads['buffers']:,}",
                         f"{reads['buffers'] / pages:.2%}", f"{reads['probe_rows']:,}", f"{reads['probe_buffers']:,}",
                         f"{top['Execution Time'] / 1000:.3f}",
                         ", ".join(scans) or "none: the constraints prove there is nothing to find"))
            if name in PRINTED_PLANS:
                texts[name] = "\n".join(r[0] for r in pg.execute(
                    sql.SQL("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ") + query, request.sql_params(),
                    prepare=False).fetchall())
    say(format_table(["statement (ohlcv_data)", "rows read", "of table rows", "buffers", "of heap pages",
                      "probe rows", "probe buffers", "seconds", "scan nodes"], rows,
                     title=f"30-day window ({', '.join(request.regions)}), EXPLAIN (ANALYZE, BUFFERS): table "
                           f"{table_rows:,} rows, {pages:,} heap pages; the window's scans apart from the index "
                           "probes for each ticker's bar before the window (a buffer counts once per access)"))
    for name, text in texts.items():
        say(f"\nEXPLAIN (ANALYZE, BUFFERS) of {name}, 30-day window:\n{text}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    manifest = ensure_sample(args.db.resolve(), args.tickers_per_region, args.days)
    cluster = Cluster(args.cluster.resolve(), free_port(), fsync=False, timescaledb=None)
    say(f"machine: {os.cpu_count()} cores (shared with other work: timings are indicative)")
    try:
        cluster.start()
        cluster.createdb()
        dsn = cluster.dsn()
        mode = ensure_loaded(dsn, args.db.resolve(), manifest)
        table_rows = _count(dsn, OHLCV_DATA.name)
        as_of = date.fromisoformat(manifest["last_date"])
        floor = floor_seconds(dsn)
        say(f"floor: one sequential scan of ohlcv_data (count(close), {table_rows:,} rows): {floor:.2f} s")
        say(f"target: {table_rows:,} OHLCV rows, as of {as_of}; {mode}")
        window = report_checks(dsn, QualityRequest.from_params({"lookback_days": 30}, default_as_of=as_of),
                               GOAL_WINDOW_S, 3, "30-day window")
        whole = report_checks(dsn, QualityRequest.from_params({"lookback_days": 0}, default_as_of=as_of),
                              GOAL_WHOLE_HISTORY_S, 1, "whole history")
        say(f"\nwhole history {whole:.2f} s (goal <= {GOAL_WHOLE_HISTORY_S:g} s) = {whole / floor:.1f} x the floor "
            f"({floor:.2f} s); 30-day window {window:.2f} s (goal <= {GOAL_WINDOW_S:g} s)")
        unenforced = unenforced_rules(dsn, QualityRequest.from_params({"lookback_days": 0}, default_as_of=as_of))
        say("where PostgreSQL does not enforce the rules (CHECKs NOT VALID, NOT NULL dropped; not in the totals), "
            "whole history: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in unenforced) + "\n")
        regions = {"regions": [args.explain_region]} if args.explain_region else {}
        explain_window(dsn, QualityRequest.from_params({"lookback_days": 30, **regions}, default_as_of=as_of),
                       table_rows)
    finally:
        cluster.stop()
        say(f"cluster stopped (data kept in {cluster.root})")
    return 0


if __name__ == "__main__":  # the loader starts producer processes
    sys.exit(main())

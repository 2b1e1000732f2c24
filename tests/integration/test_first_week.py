"""A first week in production with nobody touching it, through the real DAGs (``dag.test()``).

Migrate a dirty source: the generator's defects, every rule of the declaration broken at least once (the
walk of ``test_rule_declaration``) and poison cells (``test_migration_hostile``). Then three nights, each as
it happens after cut-over: the platform writes a new trading day for every ticker straight into PostgreSQL
(``created_at`` included, as its inserts write it); the nightly backup runs and must verify and move
``latest``; the daily quality run checks the history as of that day and must pass (freshness included) while
finding the planted gaps and outliers. Then the weekly maintenance; then the restore DAG restores ``latest``
into a new database, which must equal the live one table by table, newest day included.
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from test_migration_hostile import _poison
from test_rule_declaration import plant_every_rule, relaxed_copy

from quantdbops import PLATFORM_TZ
from quantdbops.backup.databases import drop_database
from quantdbops.registry import declared_rules, migratable_tables
from sample import generate
from support.backup import fingerprints as all_fingerprints
from support.backup import get_json, load_dag, new_bucket
from support.harness import MODES

pytestmark = pytest.mark.slow
SEOUL = ZoneInfo(PLATFORM_TZ)
NIGHTS = 3


def _business_days_after(day: date, n: int) -> list[date]:
    out = []
    while len(out) < n:
        day += timedelta(days=1)
        if day.weekday() < 5:
            out.append(day)
    return out


def _states(dag_run: Any) -> dict[str, str | None]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def _platform_writes(conn: psycopg.Connection, day: date) -> int:
    """One daily bar per ticker on ``day``, next to its last close, as the platform's collector inserts it."""
    written_at = datetime.combine(day, time(18, 5, 13, 417_000), SEOUL)
    cur = conn.execute(
        "INSERT INTO public.ohlcv_data (ticker, region, date, timeframe, open, high, low, close, volume, created_at) "
        "SELECT ticker, region, %s, 'D', close, round(close * 1.012, 2), round(close * 0.991, 2), "
        "round(close * 1.003, 2), volume + 17, %s + (row_number() OVER () * interval '1 ms') "
        "FROM (SELECT DISTINCT ON (ticker, region) ticker, region, close, volume FROM public.ohlcv_data "
        "WHERE timeframe = 'D' ORDER BY ticker, region, date DESC) last", (day, written_at))
    return cur.rowcount


def _public_fingerprints(kw: dict[str, object]) -> dict[str, tuple[int, str]]:
    return {k: v for k, v in all_fingerprints(kw).items() if k.startswith("public.")}


@pytest.mark.parametrize("mode", MODES)
def test_a_first_week_after_cut_over(mode: str, airflow_db: Path, airflow_connections: dict[str, str],
                                     pg_conn: psycopg.Connection, s3_endpoint: str, tmp_path: Path) -> None:
    today = datetime.now(SEOUL).date()
    nights = _business_days_after(today - timedelta(days=9), NIGHTS)
    last_migrated = nights[0] - timedelta(days=1 if nights[0].weekday() else 3)
    generated = tmp_path / "generated.db"
    manifest = generate(generated, tickers_per_region=3, days=70, seed=23, defects=True, end_date=last_migrated)
    source = Path(airflow_connections["sqlite_path"])
    relaxed_copy(generated, source)
    plant_every_rule(source)
    _poison(source)
    kw = dict(p.split("=", 1) for p in airflow_connections["pg_dsn"].split())
    bucket = new_bucket(s3_endpoint, f"week-{uuid.uuid4().hex[:10]}")
    backups = {"bucket": bucket, "local_dir": str(tmp_path / "backups")}

    migration = load_dag("migrate_sqlite_to_postgres").test(run_conf={"dry_run": False})
    assert migration.state == "success", _states(migration)
    labels = {f"{t} {r}:{d.split(': ')[0] if r == 'invalid_text' else d}" for t, r, d in pg_conn.execute(
        "SELECT table_name, reason, detail FROM ops.migration_rejects WHERE reason <> 'duplicate_key'")}
    assert pg_conn.execute("SELECT count(*) FROM ops.migration_rejects WHERE reason = 'duplicate_key'").fetchone()[0]
    # Every rule a row can break on its own was broken and is in the quarantine under its own label.
    own = {f"{t.name} {r.label}" for t in migratable_tables() for r in declared_rules(t)
           if r.kind != "key" and not (t.region_rule.value == "ticker" and r.column == "region")
           and not (r.column and r.column in t.derived)
           and not (r.kind == "rule" and "region" in r.rule.expr and t.region_rule.value == "ticker")}
    assert own <= labels, sorted(own - labels)
    assert pg_conn.execute("SELECT count(*) FROM public.ohlcv_monthly").fetchone()[0] > 0

    gap_tickers = {e["ticker"] for e in manifest["planted"] if e["kind"] == "gap"}
    outlier_tickers = {e["ticker"] for e in manifest["planted"] if e["kind"] == "extreme_return"}
    latest_names = []
    for night, day in enumerate(nights, 1):
        assert _platform_writes(pg_conn, day) > 0
        at_two = datetime.combine(day + timedelta(days=1), time(2, 0), SEOUL)
        backup = load_dag("postgres_backup_nightly").test(logical_date=at_two, run_conf=backups)
        assert backup.state == "success", (night, _states(backup))
        latest = get_json(s3_endpoint, bucket, f"backups/{kw['dbname']}/latest.json")
        assert latest["name"] not in latest_names, "latest did not move"
        latest_names.append(latest["name"])

        at_six = datetime.combine(day + timedelta(days=1), time(6, 0), SEOUL)
        quality = load_dag("data_quality_daily").test(
            logical_date=at_six, run_conf={"as_of": day.isoformat(), "lookback_days": 0})
        assert quality.state == "success", (night, _states(quality))
        found = {(c, tuple(sorted({row.get("ticker") for row in (s or [])}))): n for c, n, s in pg_conn.execute(
            "SELECT check_name, violation_count, sample_rows FROM ops.quality_results WHERE run_id = %s "
            "AND NOT passed", (quality.run_id,))}
        fired = {c for c, _ in found}
        assert {"missing_dates", "price_anomalies"} <= fired, (night, found)
        flagged = {t for (c, tickers) in found for t in tickers if c in ("missing_dates", "price_anomalies")}
        assert gap_tickers | outlier_tickers <= flagged, (night, found)
        freshness = pg_conn.execute("SELECT bool_and(passed) FROM ops.quality_results WHERE run_id = %s AND "
                                    "check_name = 'freshness'", (quality.run_id,)).fetchone()[0]
        assert freshness is True

    sunday = datetime.combine(nights[-1] + timedelta(days=(6 - nights[-1].weekday()) or 7), time(3, 0), SEOUL)
    maintenance = load_dag("postgres_maintenance_weekly").test(logical_date=sunday)
    assert maintenance.state == "success", _states(maintenance)

    live = _public_fingerprints(kw)
    target = f"drill_{uuid.uuid4().hex[:8]}"
    try:
        drill = load_dag("postgres_restore").test(run_conf={"backup": "latest", "target_database": target, **backups})
        assert drill.state == "success", _states(drill)
        restored_kw = {**kw, "dbname": target}
        restored = _public_fingerprints(restored_kw)
        # The maintenance refreshed the aggregates after the last backup: those are compared by presence.
        aggregates = {f"public.{v}" for v in ("ohlcv_monthly", "ohlcv_quarterly", "ohlcv_yearly",
                                              "ohlcv_daily_summary", "factor_monthly_performance")}
        assert set(restored) == set(live)
        assert {k: v for k, v in restored.items() if k not in aggregates} == \
            {k: v for k, v in live.items() if k not in aggregates}
        with psycopg.connect(" ".join(f"{k}={v}" for k, v in restored_kw.items())) as c:
            assert c.execute("SELECT max(date) FROM public.ohlcv_data").fetchone()[0] == nights[-1]
    finally:
        drop_database(kw, target)
        shutil.rmtree(backups["local_dir"], ignore_errors=True)
    assert json.dumps(latest_names)  # three distinct verified backups moved latest

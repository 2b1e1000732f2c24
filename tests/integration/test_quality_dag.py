"""The quality DAG end to end through ``dag.test()``: clean data passes, an error-level violation fails."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg
import pytest

from quantdbops.schema.apply import apply_schema
from sample import generate
from support.dags import load_dag
from support.migration import load
from support.quality import CLEAN

pytestmark = pytest.mark.slow


def _prepare(conn: psycopg.Connection, dsn: str, path: str) -> date:
    manifest = generate(path, **CLEAN)
    apply_schema(conn)
    load(path, dsn, names=["tickers", "ohlcv_data"])
    return date.fromisoformat(manifest["last_date"])


def test_clean_data_succeeds_and_an_orphan_fails_the_run(
    airflow_db: Path, airflow_connections: dict[str, str], pg_conn: psycopg.Connection
) -> None:
    last = _prepare(pg_conn, airflow_connections["pg_dsn"], airflow_connections["sqlite_path"])
    conf = {"as_of": last.isoformat(), "lookback_days": 0}
    ok = load_dag("data_quality_daily").test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in ok.get_task_instances()}
    assert ok.state == "success", states
    rows = pg_conn.execute("SELECT count(*), count(*) FILTER (WHERE NOT passed) FROM ops.quality_results "
                           "WHERE run_id = %s", (ok.run_id,)).fetchone()
    assert rows[0] > 0 and rows[1] == 0

    pg_conn.execute("INSERT INTO public.ohlcv_data (ticker, region, date, timeframe, open, high, low, close, volume, "
                    "created_at) VALUES ('ZZORPHAN', 'KR', %s, 'D', 10, 11, 9, 10, 100, now())", (last,))
    bad = load_dag("data_quality_daily").test(run_conf={**conf, "checks": ["referential", "freshness"]})
    states = {ti.task_id: (ti.state, ti.try_number) for ti in bad.get_task_instances()}
    assert bad.state == "failed"
    assert states["report"] == ("failed", 1)
    assert states["check_referential"][0] == "success" and states["check_duplicates"][0] == "skipped"
    failed = pg_conn.execute("SELECT check_name, table_name, region, violation_count, sample_rows FROM "
                             "ops.quality_results WHERE run_id = %s AND NOT passed", (bad.run_id,)).fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in failed] == [("referential", "ohlcv_data", "KR", 1)]
    assert failed[0][4][0]["ticker"] == "ZZORPHAN"

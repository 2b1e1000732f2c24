"""The re-run tier: migrate, fix the source as the platform team would, migrate again: validation passes with
no hand-written SQL. A reject filed under any spelling of a region is replaced with its slice; a ticker the
platform removed goes with ``prune_tickers`` unless something still references it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from quantdbops.migration import verdict
from quantdbops.migration.prune import prune_tickers
from quantdbops.migration.source import open_source
from quantdbops.schema.apply import apply_schema
from sample import generate
from support.harness import MODES
from support.migration import CLEAN_SAMPLE, MIGRATABLE, failures, load, validate


def _one_ohlcv_row(path: Path) -> tuple[int, str, str, str]:
    with sqlite3.connect(path) as s:
        return s.execute("SELECT rowid, ticker, region, date FROM ohlcv_data WHERE region = 'KR' "
                         "ORDER BY rowid LIMIT 1 OFFSET 11").fetchone()


@pytest.mark.parametrize("mode", MODES)
def test_a_rerun_heals_a_reject_of_any_region_spelling(
        mode: str, tmp_path: Path, pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    path = tmp_path / "spock_local.db"
    generate(path, **CLEAN_SAMPLE)
    rowid, ticker, _, day = _one_ohlcv_row(path)
    with sqlite3.connect(path) as s:
        s.execute("UPDATE ohlcv_data SET region = ' kr' WHERE rowid = ?", (rowid,))
    apply_schema(pg_conn)
    load(path, pg_dsn, run_id="first")
    # Quarantined, and filed under the region its spelling names: the slice a later KR load replaces.
    assert pg_conn.execute("SELECT region, reason, detail FROM ops.migration_rejects").fetchall() == [
        ("KR", "invalid_value", "chk_ohlcv_region")]
    assert failures(validate(path, pg_dsn)) == []
    # What an earlier version left: a reject filed under the spelling the source row carried.
    pg_conn.execute("INSERT INTO ops.migration_rejects (run_id, table_name, region, source_rowid, reason, detail, "
                    "raw_row) VALUES ('old', 'ohlcv_data', 'kr', %s, 'invalid_value', 'chk_ohlcv_region', '{}')",
                    (rowid,))
    assert [f[:3] for f in failures(validate(path, pg_dsn))] == [("row_counts", "ohlcv_data", "kr")]

    with sqlite3.connect(path) as s:  # the platform fixes the row
        s.execute("UPDATE ohlcv_data SET region = 'KR' WHERE rowid = ?", (rowid,))
    load(path, pg_dsn, ["ohlcv_data"], run_id="second")
    assert pg_conn.execute("SELECT count(*) FROM ops.migration_rejects").fetchone()[0] == 0
    assert pg_conn.execute("SELECT count(*) FROM ohlcv_data WHERE ticker = %s AND region = 'KR' AND date = %s",
                           (ticker, day)).fetchone()[0] == 1
    assert failures(validate(path, pg_dsn)) == []


def _remove_ticker(path: Path, ticker: str) -> None:
    """What the platform does when it drops a ticker: its rows go from every table that names it."""
    with sqlite3.connect(path) as s:
        for t in MIGRATABLE:
            cols = [c for c in ("ticker", "etf_ticker", "stock_ticker") if c in
                    {r[1] for r in s.execute(f'PRAGMA table_info("{t.source}")')}]
            for c in cols:
                s.execute(f'DELETE FROM "{t.source}" WHERE "{c}" = ?', (ticker,))


@pytest.mark.parametrize("mode", MODES)
def test_prune_tickers_makes_the_target_equal_the_source(
        mode: str, tmp_path: Path, pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    path = tmp_path / "spock_local.db"
    generate(path, **CLEAN_SAMPLE)
    apply_schema(pg_conn)
    load(path, pg_dsn, run_id="first")
    with sqlite3.connect(path) as s:
        gone, still_named = (r[0] for r in s.execute(
            "SELECT ticker FROM tickers WHERE region = 'US' ORDER BY ticker LIMIT 2"))
    _remove_ticker(path, gone)
    _remove_ticker(path, still_named)
    # A table the platform writes in PostgreSQL only still names one of them.
    pg_conn.execute("INSERT INTO factor_scores (ticker, region, calculation_date, total_score) "
                    "VALUES (%s, 'US', CURRENT_DATE, 1)", (still_named,))

    load(path, pg_dsn, run_id="second")
    failed = [r for r in validate(path, pg_dsn) if r.status == "fail"]
    assert {(r.check, r.table) for r in failed} == {("row_counts", "tickers"), ("content_checksum", "tickers")}
    assert "prune_tickers: true" in verdict.what_to_do(failed, "second")

    sconn = open_source(path)
    with psycopg.connect(pg_dsn, autocommit=True) as pg:
        planned = prune_tickers(sconn, pg, ["KR", "US", "CN", "HK", "JP", "VN"], dry_run=True)
        assert (planned.deleted, planned.kept) == ([(gone, "US")], {(still_named, "US"): ["factor_scores"]})
        assert pg.execute("SELECT count(*) FROM tickers WHERE ticker = %s", (gone,)).fetchone()[0] == 1
        done = prune_tickers(sconn, pg, ["KR", "US", "CN", "HK", "JP", "VN"], dry_run=False)
        assert (done.deleted, done.kept) == (planned.deleted, planned.kept)
        # Only the referenced one is left, and validation says so.
        assert [(r.check, r.table) for r in validate(path, pg_dsn) if r.status == "fail"] == [
            ("row_counts", "tickers"), ("content_checksum", "tickers")]
        pg.execute("DELETE FROM factor_scores WHERE ticker = %s", (still_named,))
        assert prune_tickers(sconn, pg, ["US"], dry_run=False).deleted == [(still_named, "US")]
    sconn.close()
    assert failures(validate(path, pg_dsn)) == []

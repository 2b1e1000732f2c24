"""The quality checks on real PostgreSQL (both modes): exactly what the generator planted, nothing more.

The defects sample is loaded through the migration's ``load_table``; the loader quarantines every planted
row it cannot load, so what the target holds are exactly the manifest's gaps and extreme returns. The
defects the loader (or a constraint) prevents are planted with SQL inside a transaction rolled back after
the test, on the same module-scoped database.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, timedelta

import psycopg
import pytest

from quantdbops.io.pg import connect
from quantdbops.quality.checks import CHECK_NAMES, check
from quantdbops.quality.compose import compose
from quantdbops.quality.report import QualityResult
from quantdbops.quality.runner import prepare_session, run_all, run_check
from quantdbops.registry import OHLCV_DATA
from support.harness import MODES
from support.quality import CLEAN, DEFECTS, Loaded, loaded_database, request, rolled_back


@pytest.fixture(scope="module", params=MODES)
def defects_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    yield from loaded_database(request, tmp_path_factory.mktemp("qdefects"), DEFECTS)


@pytest.fixture(scope="module", params=MODES[:1])
def clean_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    yield from loaded_database(request, tmp_path_factory.mktemp("qclean"), CLEAN)


@pytest.fixture
def tx(defects_db: Loaded) -> Iterator[psycopg.Connection]:
    """A transaction on the defects database, rolled back after the test (plants vanish)."""
    yield from rolled_back(defects_db.dsn)


def _violations(results: list[QualityResult], name: str) -> dict[tuple[str, str], int]:
    return {(r.table_name, r.region): r.violation_count for r in results if r.check_name == name and not r.passed}


def _gap_keys(results: list[QualityResult]) -> set[tuple[str, str, str, str]]:
    return {(s["ticker"], s["region"], s["prev_date"], s["date"])
            for r in results if r.check_name == "missing_dates" for s in r.sample_rows}


def _return_keys(results: list[QualityResult]) -> set[tuple[str, str, str]]:
    return {(s["ticker"], s["region"], s["date"]) for r in results if r.check_name == "price_anomalies"
            for s in r.sample_rows}


def _planted_gaps(db: Loaded, since: date = date.min) -> set[tuple[str, str, str, str]]:
    return {(e["ticker"], e["region"], e["prev_date"], e["next_date"]) for e in db.planted("gap")
            if date.fromisoformat(e["next_date"]) >= since}


def _planted_returns(db: Loaded, since: date = date.min) -> set[tuple[str, str, str]]:
    return {(e["ticker"], e["region"], e["date"]) for e in db.planted("extreme_return")
            if date.fromisoformat(e["date"]) >= since}


# --- 1. exact detection on the planted sample ------------------------------------------------------------
def test_planted_gaps_and_extreme_returns_are_found_exactly(defects_db: Loaded) -> None:
    with connect(defects_db.dsn, autocommit=True) as conn:
        results = run_all(conn, request(defects_db.last_date))
    assert _planted_gaps(defects_db) and _planted_returns(defects_db)
    assert _gap_keys(results) == _planted_gaps(defects_db)
    assert sum(_violations(results, "missing_dates").values()) == len(defects_db.planted("gap"))
    assert _return_keys(results) == _planted_returns(defects_db)
    assert sum(_violations(results, "price_anomalies").values()) == len(defects_db.planted("extreme_return"))
    for e in defects_db.planted("gap"):
        sample = next(s for r in results for s in r.sample_rows if r.check_name == "missing_dates"
                      and s["ticker"] == e["ticker"])
        assert sample["gap_days"] == e["gap_days"]
    others = {name for name in CHECK_NAMES if name not in ("missing_dates", "price_anomalies")}
    assert [r for r in results if r.check_name in others and not r.passed] == []
    assert {r.check_name for r in results} == set(CHECK_NAMES)


def test_a_clean_sample_passes_every_check(clean_db: Loaded) -> None:
    with connect(clean_db.dsn, autocommit=True) as conn:
        for lookback in (0, 30):
            results = run_all(conn, request(clean_db.last_date, lookback_days=lookback))
            assert results and [r.as_dict() for r in results if not r.passed] == [], lookback


# --- 2. params honoured -----------------------------------------------------------------------------------
def test_region_filter_checks_only_those_regions(defects_db: Loaded) -> None:
    gap = defects_db.planted("gap")[0]
    with connect(defects_db.dsn, autocommit=True) as conn:
        results = run_all(conn, request(defects_db.last_date, regions=[gap["region"]]))
    assert {r.region for r in results} == {gap["region"], "ALL"}
    assert _gap_keys(results) == {k for k in _planted_gaps(defects_db) if k[1] == gap["region"]}
    assert _return_keys(results) == {k for k in _planted_returns(defects_db) if k[1] == gap["region"]}


def test_gap_threshold_is_honoured(defects_db: Loaded) -> None:
    lengths = sorted({e["gap_days"] for e in defects_db.planted("gap")})
    with connect(defects_db.dsn, autocommit=True) as conn:
        for threshold in lengths:
            found = _gap_keys(run_check(conn, "missing_dates",
                                        request(defects_db.last_date, gap_threshold_days=threshold)))
            assert found == {(e["ticker"], e["region"], e["prev_date"], e["next_date"])
                             for e in defects_db.planted("gap") if e["gap_days"] > threshold}, threshold


def test_z_threshold_is_honoured(defects_db: Loaded) -> None:
    # No value of n can lie more than (n - 1) / sqrt(n) sample deviations from their mean.
    n = defects_db.manifest["days"] - 1
    impossible = (n - 1) / math.sqrt(n) + 0.01
    with connect(defects_db.dsn, autocommit=True) as conn:
        assert _return_keys(run_check(conn, "price_anomalies", request(defects_db.last_date, z_threshold=3.0))) \
            == _planted_returns(defects_db)
        for name in ("price_anomalies", "volume_anomalies"):
            assert all(r.passed for r in run_check(conn, name, request(defects_db.last_date,
                                                                       z_threshold=impossible)))


def test_lookback_window_is_honoured(defects_db: Loaded) -> None:
    as_of = defects_db.last_date
    ends = sorted({date.fromisoformat(e["next_date"]) for e in defects_db.planted("gap")}
                  | {date.fromisoformat(e["date"]) for e in defects_db.planted("extreme_return")})
    with connect(defects_db.dsn, autocommit=True) as conn:
        for day in ends:  # windows starting exactly on a planted day, so it is the oldest one inside
            lookback = (as_of - day).days
            results = run_all(conn, request(as_of, lookback_days=lookback,
                                            checks=["missing_dates", "price_anomalies"]))
            assert _gap_keys(results) == _planted_gaps(defects_db, since=day), day
            assert _return_keys(results) == _planted_returns(defects_db, since=day), day
        before = run_all(conn, request(ends[0] - timedelta(days=1), lookback_days=0,
                                       checks=["missing_dates", "price_anomalies"]))
        assert _gap_keys(before) == set() and _return_keys(before) == set()  # as_of bounds the window too


# --- 3. defects the loader prevents, planted with SQL -------------------------------------------------------
def _bars(conn: psycopg.Connection, region: str, n: int = 1) -> list[tuple]:
    return conn.execute("SELECT ticker, region, date FROM public.ohlcv_data WHERE region = %s AND timeframe = 'D' "
                        "ORDER BY ticker, date OFFSET 10 LIMIT %s", (region, n)).fetchall()


def test_duplicates_and_near_duplicates_are_found(defects_db: Loaded, tx: psycopg.Connection) -> None:
    tx.execute("ALTER TABLE public.ohlcv_data DROP CONSTRAINT ohlcv_data_pkey")  # a key not enforced
    tx.execute("ALTER TABLE public.ohlcv_data DROP CONSTRAINT chk_ohlcv_timeframe")
    planted = {}
    for region, change in (("KR", "ticker || ''"), ("US", "lower(ticker) || ' '"), ("HK", "' ' || ticker")):
        ticker, _, day = _bars(tx, region)[0]
        tx.execute("INSERT INTO public.ohlcv_data SELECT * FROM public.ohlcv_data WHERE ticker = %s AND "
                   "region = %s AND date = %s", (ticker, region, day))
        tx.execute(f"UPDATE public.ohlcv_data SET ticker = {change} WHERE ctid = (SELECT max(ctid) FROM "
                   "public.ohlcv_data WHERE ticker = %s AND region = %s AND date = %s)", (ticker, region, day))
        planted[(region, ticker.upper(), day.isoformat())] = 1
    ticker, _, day = _bars(tx, "JP")[0]
    tx.execute("INSERT INTO public.ohlcv_data SELECT * FROM public.ohlcv_data WHERE ticker = %s AND region = 'JP' "
               "AND date = %s", (ticker, day))
    tx.execute("UPDATE public.ohlcv_data SET timeframe = '1d' WHERE ctid = (SELECT max(ctid) FROM "
               "public.ohlcv_data WHERE ticker = %s AND region = 'JP' AND date = %s)", (ticker, day))
    planted[("JP", ticker.upper(), day.isoformat())] = 1
    results = run_check(tx, "duplicates", request(defects_db.last_date))
    found = {(s["region"], s["ticker"], s["date"]): s["copies"] - 1
             for r in results if r.table_name == "ohlcv_data" for s in r.sample_rows}
    assert found == planted
    assert _violations(results, "duplicates") == {("ohlcv_data", region): 1 for region, _, _ in planted}
    jp = next(s for r in results if r.region == "JP" for s in r.sample_rows)
    assert sorted(x["timeframe"] for x in jp["spellings"]) == ["1d", "D"]


def test_nulls_in_required_columns_are_found(defects_db: Loaded, tx: psycopg.Connection) -> None:
    tx.execute("ALTER TABLE public.ohlcv_data ALTER COLUMN volume DROP NOT NULL")
    tx.execute("ALTER TABLE public.exchange_rate_history ALTER COLUMN source DROP NOT NULL, "
               "ALTER COLUMN rate DROP NOT NULL")
    bars = _bars(tx, "CN", 2)
    for ticker, region, day in bars:
        tx.execute("UPDATE public.ohlcv_data SET volume = NULL WHERE ticker = %s AND region = %s AND date = %s",
                   (ticker, region, day))
    currency, rate_date = tx.execute("SELECT currency, rate_date FROM public.exchange_rate_history "
                                     "ORDER BY rate_date DESC LIMIT 1").fetchone()
    tx.execute("UPDATE public.exchange_rate_history SET rate = NULL WHERE currency = %s AND rate_date = %s",
               (currency, rate_date))
    results = run_check(tx, "null_required", request(defects_db.last_date))
    assert _violations(results, "null_required") == {("ohlcv_data", "CN"): 2, ("exchange_rate_history", "ALL"): 1}
    samples = {r.table_name: r.sample_rows for r in results if not r.passed}
    assert {(s["ticker"], s["date"], tuple(s["null_columns"])) for s in samples["ohlcv_data"]} \
        == {(t, d.isoformat(), ("volume",)) for t, _, d in bars}
    assert [(s["currency"], s["null_columns"]) for s in samples["exchange_rate_history"]] == [(currency, ["rate"])]


def test_ohlcv_business_rules_are_found(defects_db: Loaded, tx: psycopg.Connection) -> None:
    for name, _ in OHLCV_DATA.checks:  # rows the schema refuses, as a database without the rules holds them
        tx.execute(f"ALTER TABLE public.ohlcv_data DROP CONSTRAINT {name}")
    bars = _bars(tx, "US", 3)
    edits = ("high = least(open, close) - 0.01", "low = 0", "volume = -1")
    expected = {}
    for (ticker, region, day), edit in zip(bars, edits, strict=True):
        tx.execute(f"UPDATE public.ohlcv_data SET {edit} WHERE ticker = %s AND region = %s AND date = %s",
                   (ticker, region, day))
        expected[(ticker, day.isoformat())] = edit
    results = run_check(tx, "ohlcv_rules", request(defects_db.last_date))
    assert _violations(results, "ohlcv_rules") == {("ohlcv_data", "US"): 3}
    rules = {(s["ticker"], s["date"]): s["broken_rules"] for r in results for s in r.sample_rows}
    assert set(rules) == set(expected)
    assert "volume < 0" in rules[next(k for k, v in expected.items() if v.startswith("volume"))]
    assert "price <= 0" in rules[next(k for k, v in expected.items() if v.startswith("low"))]


def test_orphan_tickers_are_found(defects_db: Loaded, tx: psycopg.Connection) -> None:
    ticker, region, day = _bars(tx, "VN")[0]
    tx.execute("INSERT INTO public.ohlcv_data (ticker, region, date, timeframe, open, high, low, close, volume, "
               "created_at) SELECT 'ZZORPHAN', region, date, timeframe, open, high, low, close, volume, created_at "
               "FROM public.ohlcv_data WHERE ticker = %s AND region = %s AND date >= %s LIMIT 2",
               (ticker, region, day))
    tx.execute("INSERT INTO public.technical_analysis (ticker, region, analysis_date, created_at) "
               "VALUES ('ZZGONE', 'VN', %s, now())", (day,))
    results = run_check(tx, "referential", request(defects_db.last_date))
    assert _violations(results, "referential") == {("ohlcv_data", "VN"): 2, ("technical_analysis", "VN"): 1}
    assert {(r.table_name, s["ticker"], s["rows"]) for r in results for s in r.sample_rows} \
        == {("ohlcv_data", "ZZORPHAN", 2), ("technical_analysis", "ZZGONE", 1)}


def test_stale_regions_are_found(defects_db: Loaded, tx: psycopg.Connection) -> None:
    cut = defects_db.last_date - timedelta(days=10)
    tx.execute("DELETE FROM public.ohlcv_data WHERE region = 'JP' AND date > %s", (cut,))
    tx.execute("DELETE FROM public.ohlcv_data WHERE region = 'HK'")
    newest = tx.execute("SELECT max(date) FROM public.ohlcv_data WHERE region = 'JP'").fetchone()[0]
    results = run_check(tx, "freshness", request(defects_db.last_date))
    assert _violations(results, "freshness") == {("ohlcv_data", "JP"): 1, ("ohlcv_data", "HK"): 1}
    samples = {r.region: r.sample_rows[0] for r in results if not r.passed}
    assert samples["JP"]["newest_date"] == newest.isoformat()
    assert samples["JP"]["age_days"] == (defects_db.last_date - newest).days
    assert samples["HK"]["newest_date"] is None
    lenient = run_check(tx, "freshness", request(defects_db.last_date,
                                                 max_age_days=(defects_db.last_date - newest).days))
    assert _violations(lenient, "freshness") == {("ohlcv_data", "HK"): 1}


# --- 4. the window does not scan the whole table --------------------------------------------------------------
def _plan_nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("name", ["missing_dates", "price_anomalies", "ohlcv_rules"])
def test_the_window_reads_only_its_own_partitions(defects_db: Loaded, tx: psycopg.Connection, name: str) -> None:
    req = request(defects_db.last_date, lookback_days=30, regions=["KR"])
    qc = check(name)
    if name == "ohlcv_rules":  # with its rules validated CHECK constraints it reads nothing at all (own test)
        for constraint, _ in OHLCV_DATA.checks:
            tx.execute(f"ALTER TABLE public.ohlcv_data DROP CONSTRAINT {constraint}")
    prepare_session(tx)
    query = psycopg.sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + compose(qc, qc.tables[0], req)
    plan = tx.execute(query, req.sql_params()).fetchone()[0][0]["Plan"]
    in_window = dict(tx.execute(
        "SELECT c.relname, bool_or(o.date >= %s) FROM public.ohlcv_data o "
        "JOIN pg_class c ON c.oid = o.tableoid GROUP BY 1",
        (req.window_start,)).fetchall())
    # the nodes that read a relation (TimescaleDB's ChunkAppend names the hypertable but reads nothing)
    scans = [n for n in _plan_nodes(plan) if "Relation Name" in n and n["Node Type"] != "Custom Scan"]
    assert scans
    total_rows = sum(1 for _ in in_window)
    read_outside = 0
    for node in scans:
        window_part = in_window.get(node["Relation Name"])
        if not window_part:
            # older partitions/chunks: only index probes for each ticker's previous bar, never a scan
            assert node["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), node
            assert "Index Cond" in node or "Recheck Cond" in node, node
            read_outside += node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
    assert total_rows > 1, "the sample must span more than one partition/chunk"
    assert read_outside <= defects_db.manifest["tickers_per_region"]  # one anchor bar per ticker at most

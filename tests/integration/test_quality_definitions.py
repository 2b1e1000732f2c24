"""Each check's definition against a fixture computed by hand, on real PostgreSQL (both modes).

Four tickers, one per definition, written here bar by bar (January 2025; weekends make 3-day steps):

- G1 (KR), gaps: daily bars on the 6th-10th, 13th, 17th, 20th and 27th, and a weekly bar on the 15th. Between
  consecutive daily bars the steps are 1 day, 3 (Fri-Mon), 4 (13th-17th) and 7 (20th-27th): with
  gap_threshold_days 3 the gaps are 4 and 7; the weekly bar is not a daily bar, so it does not split the 4.
- P1 (US), returns: 17 weekdays from the 6th, close 100 for nine bars, then 110 for eight. Its 16 returns
  are 15 zeros and one +0.1 (the 17th over the 16th). With n returns of which one is x and the rest 0, the
  mean is x/n and the sample standard deviation x/sqrt(n), so that return's z is (n - 1)/sqrt(n): 15/4 = 3.75.
  A window starting on the 17th holds 8 returns (the first against the bar before the window): z = 7/sqrt(8)
  = 2.47.
- V1 (JP), volumes: 16 weekdays from the 6th, volume 1000 except 5000 on the 15th. The same arithmetic on the
  volumes themselves: mean 1250, z = 15/4 = 3.75.
- D1 (HK), duplicates: five weekdays from the 6th; the tests add the same key spelled 'd1 ', or with
  timeframe '1d', or an exact copy. HK's newest bar, the 10th, is 18 days old on the 28th; CN and VN have none.

Every other check passes on this fixture; each test plants what it needs in a transaction it rolls back. The
same fixture with every chunk compressed (TimescaleDB) gives the same answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import psycopg
import pytest

from pgcluster import Cluster
from quantdbops.io.pg import connect
from quantdbops.quality.params import QualityRequest
from quantdbops.quality.report import QualityResult
from quantdbops.quality.runner import run_all, run_check
from quantdbops.registry import OHLCV_DATA
from quantdbops.schema.apply import apply_schema
from quantdbops.schema.partitions import ensure_partitions
from support.harness import MODES
from support.quality import rolled_back

JAN = date(2025, 1, 1)
LAST = date(2025, 1, 28)


def _day(n: int) -> date:
    return JAN.replace(day=n)


def _weekdays(first: date, count: int) -> list[date]:
    days, day = [], first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


G1 = [_day(n) for n in (6, 7, 8, 9, 10, 13, 17, 20, 27)]
P1 = _weekdays(_day(6), 17)
P1_CLOSES = [100] * 9 + [110] * 8
V1 = _weekdays(_day(6), 16)
V1_VOLUMES = [5000 if d == _day(15) else 1000 for d in V1]
D1 = _weekdays(_day(6), 5)


def _bars() -> list[tuple]:
    """(ticker, region, date, timeframe, close, volume) of the whole fixture."""
    rows = [("G1", "KR", d, "D", 50, 1000) for d in G1] + [("G1", "KR", _day(15), "W", 50, 5000)]
    rows += [("P1", "US", d, "D", c, 1000) for d, c in zip(P1, P1_CLOSES, strict=True)]
    rows += [("V1", "JP", d, "D", 20, v) for d, v in zip(V1, V1_VOLUMES, strict=True)]
    rows += [("D1", "HK", d, "D", 30, 1000) for d in D1]
    return rows


def _insert_bar(conn: psycopg.Connection, ticker: str, region: str, day: date, timeframe: str, close: float,
                volume: int) -> None:
    conn.execute("INSERT INTO public.ohlcv_data (ticker, region, date, timeframe, open, high, low, close, volume, "
                 "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())",
                 (ticker, region, day, timeframe, close, close, close, close, volume))


def _fixture_database(cluster: Cluster, compress: bool = False) -> Iterator[str]:
    name = f"qdef_{uuid.uuid4().hex[:12]}"
    cluster.createdb(name)
    dsn = cluster.dsn(name)
    with connect(dsn, autocommit=True) as conn:
        apply_schema(conn)
        ensure_partitions(conn, OHLCV_DATA, JAN, LAST)
        for ticker, region in (("G1", "KR"), ("P1", "US"), ("V1", "JP"), ("D1", "HK")):
            conn.execute("INSERT INTO public.tickers (ticker, region, name, exchange, currency, asset_type, "
                         "created_at, last_updated) VALUES (%s, %s, %s, 'X', 'KRW', 'STOCK', now(), now())",
                         (ticker, region, ticker))
        for row in _bars():
            _insert_bar(conn, *row)
        if compress:  # every chunk into the columnstore, as the compression policy leaves old chunks
            columnstore = conn.execute("SELECT EXISTS (SELECT FROM pg_proc WHERE proname = 'convert_to_columnstore')"
                                       ).fetchone()[0]
            for (chunk,) in conn.execute("SELECT show_chunks('public.ohlcv_data')::text").fetchall():
                conn.execute("CALL convert_to_columnstore(%s::regclass)" if columnstore
                             else "SELECT compress_chunk(%s::regclass)", (chunk,))
        conn.execute("ANALYZE")
    yield dsn
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=MODES)
def fixture_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _fixture_database(
        request.getfixturevalue("tsdb_cluster" if request.param == "timescaledb" else "plain_cluster"))


@pytest.fixture(scope="module")
def compressed_dsn(tsdb_cluster: Cluster) -> Iterator[str]:
    yield from _fixture_database(tsdb_cluster, compress=True)


@pytest.fixture
def tx(fixture_dsn: str) -> Iterator[psycopg.Connection]:
    yield from rolled_back(fixture_dsn)


def _request(as_of: date = LAST, **params: object) -> QualityRequest:
    return QualityRequest.from_params({"lookback_days": 0, **params}, default_as_of=as_of)


def _failing(results: list[QualityResult]) -> dict[tuple[str, str], int]:
    return {(r.table_name, r.region): r.violation_count for r in results if not r.passed}


def _samples(results: list[QualityResult], *keys: str) -> set[tuple]:
    return {tuple(s[k] for k in keys) for r in results for s in r.sample_rows}


FOUND = {("missing_dates", "ohlcv_data", "KR", "warning"): 2,
         ("price_anomalies", "ohlcv_data", "US", "warning"): 1,
         ("volume_anomalies", "ohlcv_data", "JP", "warning"): 1,
         **{("freshness", "ohlcv_data", region, "error"): 1 for region in ("HK", "CN", "VN")}}


def _found(results: list[QualityResult]) -> dict[tuple[str, str, str, str], int]:
    return {(r.check_name, r.table_name, r.region, r.severity): r.violation_count for r in results if not r.passed}


def test_the_fixture_is_clean_but_for_what_each_definition_finds(fixture_dsn: str) -> None:
    with connect(fixture_dsn, autocommit=True) as conn:
        assert _found(run_all(conn, _request())) == FOUND


@pytest.mark.timescaledb
def test_compressed_chunks_give_the_same_answers(compressed_dsn: str) -> None:
    with connect(compressed_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT bool_and(is_compressed) FROM timescaledb_information.chunks "
                            "WHERE hypertable_name = 'ohlcv_data'").fetchone()[0]
        results = run_all(conn, _request())
        straddling = run_check(conn, "missing_dates", _request(_day(27), lookback_days=5))
        across = run_check(conn, "price_anomalies", _request(lookback_days=11, z_threshold=2.4))
    assert _found(results) == FOUND
    gaps = [r for r in results if r.check_name == "missing_dates"]
    assert _samples(gaps, "prev_date", "date", "gap_days") == {("2025-01-13", "2025-01-17", 4),
                                                               ("2025-01-20", "2025-01-27", 7)}
    prices = [r for r in results if r.check_name == "price_anomalies"]
    assert _samples(prices, "ticker", "prev_close", "close", "z_score") == {("P1", 100, 110, 3.75)}
    volumes = [r for r in results if r.check_name == "volume_anomalies"]
    assert _samples(volumes, "ticker", "date", "z_score") == {("V1", "2025-01-15", 3.75)}
    assert _samples(straddling, "prev_date", "date") == {("2025-01-20", "2025-01-27")}
    assert _samples(across, "prev_date", "date", "z_score") == {("2025-01-16", "2025-01-17", 2.47)}


@pytest.mark.parametrize(("max_age", "stale"), [pytest.param(17, {"HK", "CN", "VN"}, id="17-days"),
                                                pytest.param(18, {"CN", "VN"}, id="18-days")])
def test_a_stale_region_is_one_whose_newest_bar_is_older_than_allowed(
    fixture_dsn: str, max_age: int, stale: set
) -> None:
    # as of the 28th: KR and JP's newest bar is the 27th, US's the 28th, HK's the 10th (18 days), CN and VN none
    with connect(fixture_dsn, autocommit=True) as conn:
        results = run_check(conn, "freshness", _request(max_age_days=max_age))
    assert {r.region for r in results if not r.passed} == stale
    hk = {("HK", "2025-01-10", 18)} if "HK" in stale else set()
    assert _samples(results, "region", "newest_date", "age_days") == hk | {("CN", None, None), ("VN", None, None)}


@pytest.mark.parametrize(("threshold", "gaps"), [
    pytest.param(3, {("2025-01-13", "2025-01-17", 4), ("2025-01-20", "2025-01-27", 7)}, id="3-days"),
    pytest.param(4, {("2025-01-20", "2025-01-27", 7)}, id="4-days"),
    pytest.param(7, set(), id="7-days"),
])
def test_a_gap_is_more_than_the_threshold_between_consecutive_daily_bars(
    fixture_dsn: str, threshold: int, gaps: set
) -> None:
    with connect(fixture_dsn, autocommit=True) as conn:
        results = run_check(conn, "missing_dates", _request(gap_threshold_days=threshold))
    assert _samples(results, "ticker", "region") <= {("G1", "KR")}
    assert _samples(results, "prev_date", "date", "gap_days") == gaps
    assert sum(r.violation_count for r in results) == len(gaps)


def test_a_gap_straddling_the_windows_start_is_found(fixture_dsn: str) -> None:
    # window 22nd..27th: G1's only bar in it is the 27th, compared with the 20th before the window
    with connect(fixture_dsn, autocommit=True) as conn:
        results = run_check(conn, "missing_dates", _request(_day(27), lookback_days=5))
    assert _samples(results, "ticker", "prev_date", "date", "gap_days") == {("G1", "2025-01-20", "2025-01-27", 7)}


@pytest.mark.parametrize(("z", "found"), [pytest.param(3.0, 1, id="3.0"), pytest.param(3.7, 1, id="3.7"),
                                          pytest.param(3.8, 0, id="3.8")])
def test_a_price_anomaly_is_a_return_beyond_z_sample_deviations(fixture_dsn: str, z: float, found: int) -> None:
    with connect(fixture_dsn, autocommit=True) as conn:
        results = run_check(conn, "price_anomalies", _request(z_threshold=z))
    assert _failing(results) == ({("ohlcv_data", "US"): 1} if found else {})
    if found:
        assert _samples(results, "ticker", "prev_date", "date", "prev_close", "close", "daily_return", "z_score") \
            == {("P1", "2025-01-16", "2025-01-17", 100, 110, 0.1, 3.75)}


@pytest.mark.parametrize(("z", "found"), [pytest.param(2.4, 1, id="2.4"), pytest.param(2.5, 0, id="2.5")])
def test_a_return_across_the_windows_start_counts(fixture_dsn: str, z: float, found: int) -> None:
    # window 17th..28th: the 17th's return is taken against the 16th, before the window
    with connect(fixture_dsn, autocommit=True) as conn:
        results = run_check(conn, "price_anomalies", _request(lookback_days=11, z_threshold=z))
    assert _samples(results, "ticker", "prev_date", "date", "z_score") == \
        ({("P1", "2025-01-16", "2025-01-17", 2.47)} if found else set())


@pytest.mark.parametrize(("z", "found"), [pytest.param(3.7, 1, id="3.7"), pytest.param(3.8, 0, id="3.8")])
def test_a_volume_anomaly_is_a_volume_beyond_z_sample_deviations(fixture_dsn: str, z: float, found: int) -> None:
    with connect(fixture_dsn, autocommit=True) as conn:
        results = run_check(conn, "volume_anomalies", _request(z_threshold=z))
    assert _samples(results, "ticker", "region", "date", "volume", "mean_volume", "z_score") == \
        ({("V1", "JP", "2025-01-15", 5000, 1250, 3.75)} if found else set())


def test_a_duplicate_is_the_same_key_spelled_differently(tx: psycopg.Connection) -> None:
    # the key's unique index stays: only the spellings that index cannot see are looked for
    tx.execute("ALTER TABLE public.ohlcv_data DROP CONSTRAINT chk_ohlcv_timeframe")
    _insert_bar(tx, "d1 ", "HK", D1[0], "D", 30, 1000)
    _insert_bar(tx, "D1", "HK", D1[1], "1d", 30, 1000)
    results = run_check(tx, "duplicates", _request())
    assert _failing(results) == {("ohlcv_data", "HK"): 2}
    assert _samples(results, "ticker", "region", "date", "timeframe", "copies") == {
        ("D1", "HK", D1[0].isoformat(), "D", 2), ("D1", "HK", D1[1].isoformat(), "D", 2)}
    spellings = {s["date"]: s["spellings"] for r in results for s in r.sample_rows}
    assert spellings[D1[0].isoformat()] == [{"region": "HK", "ticker": "D1", "timeframe": "D"},
                                            {"region": "HK", "ticker": "d1 ", "timeframe": "D"}]


def test_without_a_unique_index_exact_copies_are_duplicates_too(tx: psycopg.Connection) -> None:
    tx.execute("ALTER TABLE public.ohlcv_data DROP CONSTRAINT ohlcv_data_pkey")
    _insert_bar(tx, "D1", "HK", D1[2], "D", 30, 1000)
    _insert_bar(tx, "D1", "HK", D1[2], "D", 30, 1000)
    _insert_bar(tx, " D1", "HK", D1[3], "D", 30, 1000)
    results = run_check(tx, "duplicates", _request())
    assert _failing(results) == {("ohlcv_data", "HK"): 3}  # two surplus copies of the 8th, one of the 9th
    assert _samples(results, "date", "copies") == {(D1[2].isoformat(), 3), (D1[3].isoformat(), 2)}

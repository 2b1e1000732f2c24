"""Units of the migration that need no database: params, COPY rendering, the source query, the registry."""

from __future__ import annotations

import re
import sqlite3
from datetime import date
from decimal import Decimal

import pytest

from quantdbops import REGIONS
from quantdbops.migration.checksum import copy_fields
from quantdbops.migration.params import MIGRATABLE, MigrationRequest, ParamError
from quantdbops.migration.producer import plain_number, render_numbers, render_numbers_batch
from quantdbops.migration.source_plan import SliceFilter, TablePlan, escape_copy_text
from quantdbops.registry import TABLES, dependency_order, migratable_tables, table
from sample.source_ddl import CONTRACT_DDL


# --- params -------------------------------------------------------------------------------------------------
def test_defaults_mean_every_region_and_table_and_a_dry_run() -> None:
    req = MigrationRequest.from_params({})
    assert req.regions == REGIONS
    assert req.tables == tuple(t.name for t in migratable_tables())
    assert req.dry_run is True
    assert (req.start_date, req.end_date, req.source_path) == (None, None, None)
    assert req.slice_filter() == SliceFilter()  # all regions = no region filter


def test_params_are_read_in_registry_order_without_duplicates() -> None:
    req = MigrationRequest.from_params({
        "regions": ["US", "KR", "US"], "tables": ["ohlcv_data", "tickers"], "start_date": "2025-01-02",
        "end_date": "2025-03-04", "dry_run": False, "source_path": "/data/spock_local.db"})
    assert req.regions == ("KR", "US")
    assert req.tables == ("tickers", "ohlcv_data")
    assert req.slice_filter() == SliceFilter(("KR", "US"), date(2025, 1, 2), date(2025, 3, 4))
    assert (req.dry_run, req.source_path) == (False, "/data/spock_local.db")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param({"regions": ["XX"]}, "unknown regions: XX", id="unknown-region"),
        pytest.param({"regions": ["KR", "EU"]}, "unknown regions: EU", id="one-unknown-region"),
        pytest.param({"regions": []}, "regions must be a non-empty list", id="no-region"),
        pytest.param({"tables": ["ohlcv"]}, "unknown tables: ohlcv", id="unknown-table"),
        pytest.param({"tables": ["factor_scores"]}, "unknown tables: factor_scores", id="target-only-table"),
        pytest.param({"start_date": "2025-03-02", "end_date": "2025-03-01"}, "is after end_date",
                     id="start-after-end"),
        pytest.param({"start_date": "2025/03/01"}, "start_date must be a date", id="malformed-date"),
        pytest.param({"dry_run": "false"}, "dry_run must be true or false", id="dry-run-string"),
        pytest.param({"dry_run": 0}, "dry_run must be true or false", id="dry-run-int"),
        pytest.param({"dry_run": None}, "dry_run must be true or false", id="dry-run-null"),
        pytest.param({"source_path": "data/spock_local.db"}, "must be an absolute path", id="relative-path"),
    ],
)
def test_bad_params_are_refused(params: dict, message: str) -> None:
    with pytest.raises(ParamError, match=re.escape(message)):
        MigrationRequest.from_params(params)


def test_same_start_and_end_is_one_day() -> None:
    req = MigrationRequest.from_params({"start_date": "2025-03-01", "end_date": "2025-03-01"})
    assert req.slice_filter() == SliceFilter(None, date(2025, 3, 1), date(2025, 3, 1))


def test_trigger_form_offers_exactly_the_registry_choices() -> None:
    from quantdbops.migration.params import migration_params

    params = migration_params()
    assert params["regions"].schema["items"]["enum"] == list(REGIONS)
    assert params["tables"].schema["items"]["enum"] == list(MIGRATABLE)
    assert params["dry_run"].value is True


# --- COPY rendering ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(1e-05, "0.00001", id="small-exponent"),
        pytest.param(-1e-05, "-0.00001", id="negative-small-exponent"),
        pytest.param(-0.0, "0.0", id="negative-zero"),
        pytest.param(0.0, "0.0", id="zero"),
        pytest.param(1.5e16, "15000000000000000.0", id="large-exponent"),
        pytest.param(1e16, "10000000000000000.0", id="exactly-1e16"),
        pytest.param(0.1, "0.1", id="plain"),
    ],
)
def test_plain_number_has_no_exponent_and_no_negative_zero(value: float, text: str) -> None:
    assert plain_number(value) == text
    assert Decimal(text) == Decimal(repr(value))  # the same number, only spelled plainly


@pytest.mark.parametrize(
    ("values", "line"),
    [
        pytest.param((1e-05,), b"0.00001", id="small-exponent"),
        pytest.param((-0.0,), b"0.0", id="negative-zero"),
        pytest.param((1.5e16,), b"15000000000000000.0", id="large-exponent"),
        pytest.param((0.0001, 9999999999999998.0), b"0.0001,9999999999999998.0", id="range-edges-as-repr"),
        pytest.param((-0.05, 7), b"-0.05,7", id="repr-kept-when-not-exponent"),
        pytest.param((None, 1, 2.5), b"null,1,2.5", id="null"),
    ],
)
def test_render_numbers_gives_copy_text_that_numeric_echoes(values: tuple, line: bytes) -> None:
    assert render_numbers(values) == line


@pytest.mark.parametrize(
    "values",
    [
        pytest.param((0.1, 0.30000000000000004, 100.0, 71234.56789012, 2.675, 1 / 3), id="shortest-digits"),
        pytest.param((None, 12345678901234, -4.86, 0.0001), id="null-int-negative"),
    ],
)
def test_batch_rendering_is_the_exact_rendering(values: tuple) -> None:
    """orjson's fast digits equal repr's for every value that needs no rewriting."""
    assert render_numbers_batch([values, values]) == [render_numbers(values)] * 2


@pytest.mark.parametrize(
    ("text", "copy_text"),
    [
        pytest.param("a\tb", "a\\tb", id="tab"),
        pytest.param("a\nb\rc", "a\\nb\\rc", id="newline-cr"),
        pytest.param("c:\\dir", "c:\\\\dir", id="backslash-first"),
        pytest.param("1e-05", "1e-05", id="text-untouched"),
        pytest.param("a\\t\tb\n", "a\\\\t\\tb\\n", id="escaped-looking-text-and-real-tab"),
        pytest.param("", "", id="empty"),
        pytest.param("Samsung Electronics Co., Ltd.", "Samsung Electronics Co.\\, Ltd.", id="delimiter"),
        pytest.param("null", "nul\\l", id="the-null-marker-as-text"),
        pytest.param("Null", "Null", id="only-the-exact-marker"),
        pytest.param("\\N", "\\\\N", id="the-default-null-marker"),
    ],
)
def test_sqlite_side_escapes_text_for_copy(text: str, copy_text: str) -> None:
    import sqlite3


    conn = sqlite3.connect(":memory:")
    assert conn.execute(f"SELECT {escape_copy_text(':t')}", {"t": text}).fetchone()[0] == copy_text


# --- the source query ---------------------------------------------------------------------------------------
FILTERS = [
    SliceFilter(),
    SliceFilter(regions=("KR",)),
    SliceFilter(regions=("KR", "US"), start_date=date(2025, 1, 1), end_date=date(2025, 6, 30)),
]


@pytest.mark.parametrize("name", [t.name for t in migratable_tables()])
def test_source_query_is_deterministic_and_values_are_parameters(name: str) -> None:
    t = table(name)
    for flt in FILTERS:
        first = TablePlan(t).query(flt)
        assert TablePlan(t).query(flt) == first
    # The SQL depends only on which filters are set: the values themselves are bound parameters.
    a = TablePlan(t).query(SliceFilter(regions=("KR",), start_date=date(2025, 1, 1), end_date=date(2025, 2, 1)))
    b = TablePlan(t).query(SliceFilter(regions=("VN",), start_date=date(2024, 5, 6), end_date=date(2024, 7, 8)))
    assert a.sql == b.sql
    hostile = "KR') OR 1=1; DROP TABLE tickers; --"
    q = TablePlan(t).query(SliceFilter(regions=(hostile,), start_date=date(2025, 1, 1)))
    assert hostile not in q.sql and "DROP TABLE" not in q.sql and "2025-01-01" not in q.sql
    if t.has_region:
        assert hostile in q.params
    if t.time_column:
        assert "2025-01-01" in q.params


@pytest.mark.parametrize("name", [t.name for t in migratable_tables()])
def test_source_query_runs_on_the_contract_schema(name: str) -> None:
    """The generated SQL is valid SQLite over the contract DDL, with the columns it announces."""
    s = sqlite3.connect(":memory:")
    for ddl in CONTRACT_DDL.values():
        s.execute(ddl)
    from quantdbops.migration.producer import prepare_source

    prepare_source(s, [("005930", "KR")], {})
    q = TablePlan(table(name)).query(SliceFilter(regions=("KR",), start_date=date(2025, 1, 1)))
    cur = s.execute(q.sql, q.params)
    assert [d[0] for d in cur.description][:4] == ["_rowid", "_reason", "_slice", "_text"]
    # one text part for the first text_columns columns, then one output per timestamp and numeric column
    assert len(cur.description) == 4 + len(q.columns) - q.text_columns
    assert [d[0] for d in cur.description][4:4 + len(q.calendar)] == [f"m_{name}" for name, _, _ in q.calendar]
    assert sorted(q.columns) == sorted(c.name for c in table(name).loaded_columns)
    # one pass over the source in rowid order, the mapped row flattened into it: no sort, no row copied apart
    ranged = TablePlan(table(name)).query(SliceFilter(regions=("KR", "US"), start_date=date(2025, 1, 1)),
                                          rowid_range=(1, 1000), duplicates="temp.dup_rows")
    plan = [r[3] for r in s.execute(f"EXPLAIN QUERY PLAN {ranged.sql}", ranged.params)]
    assert not [step for step in plan if "TEMP B-TREE" in step or "CO-ROUTINE" in step], plan


def _ohlcv_source(rows: list[dict], untyped: tuple[str, ...] = ()) -> tuple[sqlite3.Connection, list[tuple]]:
    """A contract-shaped SQLite with one ticker and the given OHLCV rows; the source query's output.
    ``untyped``: OHLCV columns declared without a type (no affinity: SQLite keeps -0.0 there)."""
    from quantdbops.migration.producer import prepare_source

    s = sqlite3.connect(":memory:")
    for name, contract in CONTRACT_DDL.items():
        ddl = contract
        for col in untyped if name == "ohlcv_data" else ():
            ddl, n = re.subn(rf"\b{col} REAL\b", col, ddl)
            assert n == 1, f"{col} is not a REAL column of the contract's ohlcv_data"
        s.execute(ddl)
    s.execute("INSERT INTO tickers (ticker, name, exchange, region, created_at, last_updated) "
              "VALUES ('005930', 'Samsung', 'KRX', 'KR', '2024-01-01 00:00:00', '2024-01-01 00:00:00')")
    base = {"ticker": "005930", "timeframe": "D", "date": "2025-01-02", "region": "KR", "open": 10.0,
            "high": 11.0, "low": 9.5, "close": 10.5, "volume": 100, "created_at": "2025-01-02T18:00:00"}
    for over in rows:
        row = {**base, **over}
        s.execute(f"INSERT INTO ohlcv_data ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    prepare_source(s, [("005930", "KR")], {})
    q = TablePlan(table("ohlcv_data")).query(SliceFilter())
    return s, s.execute(q.sql, q.params).fetchall()


def _ohlcv_loaded(rows: list[dict], untyped: tuple[str, ...] = ()) -> tuple[list[str], list[str | None]]:
    """The producer over those rows: the COPY lines it emits and each row's reject reason (None: loaded)."""
    from quantdbops.migration.producer import produce

    s, _ = _ohlcv_source(rows, untyped)
    chunks: list[bytes] = []
    res = produce(s, "ohlcv_data", SliceFilter(), None, {}, chunks.append)
    lines = b"".join(chunks).decode().splitlines()
    why = {rowid: f"{kind}:{detail}" for rowid, _region, kind, detail in res.rejects}
    assert len(lines) + len(why) == len(rows)
    return lines, [why.get(i + 1) for i in range(len(rows))]


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        pytest.param({"date": "2025-02-30"}, "malformed_date:date", id="day-past-month-end"),
        pytest.param({"date": "2025-13-45"}, "malformed_date:date", id="month-13-named-not-row"),
        pytest.param({"date": "2025/01/02"}, "malformed_date:date", id="slashes"),
        pytest.param({"date": "2025-1-2"}, "malformed_date:date", id="no-leading-zeros"),
        pytest.param({"date": "2025-01-02 00:00:00"}, "malformed_date:date", id="date-with-a-time"),
        pytest.param({"date": "0000-01-02"}, "malformed_date:date", id="year-0"),
        pytest.param({"date": 20250102}, "malformed_date:date", id="integer-date"),
        pytest.param({"created_at": "2025-13-02T18:00:00"}, "malformed_timestamp:created_at", id="ts-month-13"),
        pytest.param({"created_at": "2025-01-02T24:00:00"}, "malformed_timestamp:created_at", id="ts-hour-24"),
        pytest.param({"created_at": "0000-01-02T18:00:00"}, "malformed_timestamp:created_at", id="ts-year-0"),
        pytest.param({"created_at": "2025-01-02T18:00:00."}, "malformed_timestamp:created_at", id="ts-bare-dot"),
        pytest.param({"created_at": "2025-01-02T18:00:00.1234567"}, "malformed_timestamp:created_at",
                     id="ts-seven-fraction-digits"),
        pytest.param({"created_at": "2025-01-02T18:00:0\u0661"}, "malformed_timestamp:created_at",
                     id="ts-non-ascii-digit"),
        pytest.param({"created_at": 1735808400}, "malformed_timestamp:created_at", id="ts-epoch-integer"),
        pytest.param({"high": 9.0}, "ohlc_violation:chk_ohlcv_high_low", id="high-below-low"),
        pytest.param({"ma5": "n/a"}, "non_numeric:ma5", id="text-in-numeric"),
        pytest.param({"ma20": b"\x00\x01"}, "non_numeric:ma20", id="blob-in-numeric"),
        pytest.param({"rsi_14": float("inf")}, "non_numeric:rsi", id="infinity"),
        pytest.param({"ma5": float("-inf")}, "non_numeric:ma5", id="minus-infinity"),
        pytest.param({"macd": float("inf"), "atr": float("-inf")}, "non_numeric:macd", id="both-infinities-sum-nan"),
        pytest.param({"ma5": 1e308, "ma20": 1e308, "ma60": 1e308}, None, id="huge-finite-sum-overflows-kept"),
        pytest.param({"volume": 10.5}, "non_numeric:volume", id="fraction-in-bigint"),
        # Several defects: the first in report order wins, whether SQLite or the producer found it.
        pytest.param({"low": "abc"}, "non_numeric:low", id="text-low-before-the-check-it-breaks"),
        pytest.param({"open": float("inf")}, "non_numeric:open", id="infinite-open-before-the-check-it-breaks"),
        pytest.param({"created_at": "yesterday", "high": 9.0}, "malformed_timestamp:created_at",
                     id="timestamp-before-check"),
        pytest.param({"date": "2025-02-30", "open": "x"}, "malformed_date:date", id="date-before-number"),
        pytest.param({"ma5": "x", "volume": 10.5}, "non_numeric:volume", id="sqlite-found-column-first"),
        pytest.param({"rsi_14": b"\x00", "ma60": "x"}, "non_numeric:ma60", id="producer-found-in-column-order"),
        # A blob where text belongs fails the fast path through the rule or lookup it also breaks; the row is
        # still reported by the blob, the first reason.
        pytest.param({"ticker": b"005930"}, "invalid_text:ticker: a blob", id="blob-ticker-not-an-orphan"),
        pytest.param({"region": b"KR"}, "invalid_text:region: a blob", id="blob-region"),
        pytest.param({"timeframe": b"D"}, "invalid_text:timeframe: a blob", id="blob-timeframe"),
        pytest.param({"timeframe": "X"}, "invalid_value:chk_ohlcv_timeframe", id="timeframe-not-listed"),
        pytest.param({"timeframe": "d "}, "invalid_value:chk_ohlcv_timeframe", id="timeframe-near-a-spelling"),
        pytest.param({"region": "kr"}, "invalid_value:chk_ohlcv_region", id="region-in-another-case"),
        pytest.param({"timeframe": "1d"}, None, id="timeframe-spelling-mapped"),
        pytest.param({"region": None}, None, id="no-region-the-tickers"),
        pytest.param({"date": "2025-01-03"}, None, id="clean"),
    ],
)
def test_each_bad_row_is_rejected_with_its_first_reason(over: dict, reason: str | None) -> None:
    lines, reasons = _ohlcv_loaded([{"date": "2025-01-06"}, over, {"date": "2025-01-07"}])
    assert reasons == [None, reason, None]
    assert len(lines) == (3 if reason is None else 2)


@pytest.mark.parametrize(
    ("stored", "copy_text"),
    [
        pytest.param("2025-01-02T18:00:00", "2025-01-02 18:00:00.000000", id="T-separator"),
        pytest.param("2025-01-02 18:00:00.5", "2025-01-02 18:00:00.500000", id="one-fraction-digit"),
        pytest.param("2024-02-29 23:59:59.123456", "2024-02-29 23:59:59.123456", id="leap-day-six-digits"),
    ],
)
def test_timestamps_are_rendered_with_six_fraction_digits(stored: str, copy_text: str) -> None:
    lines, reasons = _ohlcv_loaded([{"created_at": stored}, {"created_at": stored, "date": "2025-01-03"}])
    assert reasons == [None, None]
    assert [copy_fields(line)[4] for line in lines] == [copy_text, copy_text]


@pytest.mark.parametrize("untyped", [(), ("ma20", "macd")], ids=["real-columns", "columns-without-affinity"])
def test_exponents_and_negative_zero_are_spelled_plainly_in_the_copy_line(untyped: tuple[str, ...]) -> None:
    """A batch with an exponent or a negative zero takes the exact path for those values only."""
    odd = {"ma5": 1e-07, "ma20": -0.0, "macd": 1.5e20, "macd_hist": -2.5e-05, "rsi_14": 55.5}
    lines, reasons = _ohlcv_loaded([odd, {"date": "2025-01-03"}], untyped)
    assert reasons == [None, None]
    by_name = dict(zip(TablePlan(table("ohlcv_data")).query(SliceFilter()).columns, copy_fields(lines[0]), strict=True))
    assert {k: by_name[k] for k in ("ma5", "ma20", "macd", "macd_hist", "rsi")} == {
        "ma5": "0.0000001", "ma20": "0.0", "macd": "150000000000000000000.0", "macd_hist": "-0.000025", "rsi": "55.5"}


def test_a_row_flagged_for_a_look_at_its_numbers_is_kept_exactly_when_all_are_finite() -> None:
    """Three 1e308 add up to infinity in SQLite's check: the values are looked at, found finite, and loaded as
    the plain numbers numeric echoes; the neighbouring rows of the batch are untouched."""
    huge = {"ma5": 1e308, "ma20": 1e308, "ma60": 1e308, "rsi_14": 50.25}
    lines, reasons = _ohlcv_loaded([{"date": "2025-01-03"}, huge, {"date": "2025-01-06"}])
    assert reasons == [None, None, None]
    names = TablePlan(table("ohlcv_data")).query(SliceFilter()).columns
    by_name = dict(zip(names, copy_fields(lines[1]), strict=True))
    plain = "1" + "0" * 308 + ".0"
    assert {k: by_name[k] for k in ("ma5", "ma20", "ma60", "rsi")} == {
        "ma5": plain, "ma20": plain, "ma60": plain, "rsi": "50.25"}
    assert lines[0].replace("2025-01-03", "2025-01-06") == lines[2]


def test_a_rejected_row_keeps_its_region_whatever_its_region_and_day_hold() -> None:
    """The region of a reject is its slice, whatever its own region and day hold: tabs in a malformed region
    or day must not move it. A region that names no region ('K<tab>R') is filed under the ticker's region,
    the slice a later load replaces."""
    from quantdbops.migration.producer import produce

    s, _ = _ohlcv_source([{"region": "K\tR"}, {"date": "2025\t01-02"}, {"date": "2025-01-03"}])
    res = produce(s, "ohlcv_data", SliceFilter(), None, {}, lambda _b: None)
    assert sorted((rowid, region) for rowid, region, _kind, _detail in res.rejects) == [(1, "KR"), (2, "KR")]
    assert res.stats["KR"][:2] == [3, 1] and set(res.stats) == {"KR"}


def test_negative_zero_is_looked_for_only_where_sqlite_can_keep_it() -> None:
    """SQLite turns -0.0 into 0 in a REAL, NUMERIC or INTEGER column; a column without a declared type keeps it,
    and only then does the producer scan batches for it."""
    from quantdbops.migration.producer import negative_zero_possible

    typed, _ = _ohlcv_source([{"ma20": -0.0}])
    assert typed.execute("SELECT ma20 FROM ohlcv_data").fetchone()[0] == 0.0
    assert not negative_zero_possible(typed, table("ohlcv_data"))
    bare, _ = _ohlcv_source([{"ma20": -0.0}], untyped=("ma20",))
    assert str(bare.execute("SELECT ma20 FROM ohlcv_data").fetchone()[0]) == "-0.0"
    assert negative_zero_possible(bare, table("ohlcv_data"))


def test_calendar_texts_are_computed_once_per_value_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from quantdbops.migration import producer as produce

    calls: list[object] = []
    real = produce.render_timestamp
    monkeypatch.setitem(produce._RENDERERS, "timestamptz", lambda raw, suffix: calls.append(raw) or real(raw, suffix))
    monkeypatch.setattr(produce, "_CALENDAR_CACHE_MAX", 3)
    texts = produce.CalendarTexts("timestamptz", utc=True)
    values = ["2025-01-02 18:00:00", "2025-01-02 18:00:00", "bad", "2025-01-03 18:00:00", "2025-01-04 18:00:00"]
    got = [texts[v] for v in values]
    assert got == [b"2025-01-02 18:00:00.000000+00", b"2025-01-02 18:00:00.000000+00", None,
                   b"2025-01-03 18:00:00.000000+00", b"2025-01-04 18:00:00.000000+00"]
    assert calls == ["2025-01-02 18:00:00", "bad", "2025-01-03 18:00:00", "2025-01-04 18:00:00"]
    assert len(texts) <= 3


def _distinct_stamps(n: int, *, fraction: bool = True, sep: str = "T") -> list[str]:
    """``n`` distinct well-formed timestamps spelled alike (as ``datetime.now().isoformat()`` writes them)."""
    import random
    from datetime import datetime, timedelta

    rng = random.Random(n)
    start = datetime(2024, 2, 27, 21, 58, 57)
    out = []
    for i in range(n):
        moment = start + timedelta(seconds=97 * i, microseconds=rng.randrange(1, 1_000_000) if fraction else 0)
        out.append(moment.isoformat(sep))
    return out


# A value that breaks one check of the batch path each; every one of them is malformed value by value too.
_BAD_STAMPS = [
    "2024-02-27T21:60:00.000001", "2024-02-27T21:59:60.000001", "2024-02-27T24:00:00.000001",
    "2025-02-29T12:00:00.000001", "2024-04-31T12:00:00.000001", "0000-01-02T12:00:00.000001",
    "2024-00-10T12:00:00.000001", "2024-01-00T12:00:00.000001", "2024-13-10T12:00:00.000001",
    "2024-01-10T12:00:0\u0661.000001", "2024-01-10T12:00:00T000001", "2024-01-10t12:00:00.000001",
    "2024-01-10T12:00:00,000001", " 2024-01-10T12:00:00.00001", "2024-01-10T12:00:00.0000012"[:26] + "\n",
]


@pytest.mark.parametrize("utc", [False, True], ids=["local", "utc"])
@pytest.mark.parametrize(
    "values",
    [
        pytest.param(_distinct_stamps(300), id="isoformat-microseconds"),
        pytest.param(_distinct_stamps(300, sep=" "), id="space-microseconds"),
        pytest.param(_distinct_stamps(300, fraction=False), id="seconds-only"),
        pytest.param(_distinct_stamps(300, fraction=False, sep=" "), id="sqlite-current-timestamp"),
        pytest.param([v if i % 2 else v.replace("T", " ") for i, v in enumerate(_distinct_stamps(300))],
                     id="T-and-space-mixed"),
        pytest.param(["2024-02-29T12:00:00.000001", "2000-02-29T00:00:00.000001", "1900-02-28T23:59:59.999999"],
                     id="leap-days-and-a-century"),
        pytest.param(_distinct_stamps(50) + _distinct_stamps(50, fraction=False), id="two-spellings"),
        pytest.param([*_distinct_stamps(50), None], id="a-null"),
        pytest.param([*_distinct_stamps(50), 1735808400], id="an-integer"),
        pytest.param([v.encode() for v in _distinct_stamps(50)], id="bytes-of-the-safe-query"),
        pytest.param([v.encode() for v in _distinct_stamps(50)] + [0], id="bytes-and-a-blob"),
        pytest.param(["2024-01-10T12:00:00.000001\n2024-01-10T12:00:00.000001", "", "2024-01-10T12:00:00.00000"],
                     id="a-newline-inside-lengths-adding-up"),
        pytest.param(["2024-01-10 12:00:00"] * 40 + _distinct_stamps(40), id="repeating-first"),
        *(pytest.param([*_distinct_stamps(20), bad, *_distinct_stamps(20)], id=f"bad-{i}")
          for i, bad in enumerate(_BAD_STAMPS)),
    ],
)
def test_a_batch_of_timestamps_renders_as_each_value_does(values: list, utc: bool) -> None:
    """The batch path (one spelling checked over the joined bytes) gives every value exactly the text, or the
    malformed verdict, the value-by-value rendering gives it; anything it does not recognise goes that way."""
    from quantdbops.migration.producer import CalendarTexts, TimestampColumn

    safe = any(type(v) is bytes for v in values)
    one_by_one = [CalendarTexts("timestamptz", utc, safe)[v] for v in values]
    assert TimestampColumn(utc, safe)(values) == one_by_one


def test_a_batch_of_distinct_timestamps_is_rendered_at_once() -> None:
    """Distinct values in one spelling take the batch path, with six fraction digits (validation's to_char)."""
    from quantdbops.migration.producer import TimestampColumn

    column = TimestampColumn(utc=True)
    values = _distinct_stamps(200, fraction=False)
    rendered = column._at_once(values)
    assert rendered is not None and rendered[0] == b"2024-02-27 21:58:57.000000+00"
    assert column._at_once(["2024-01-10T12:00:00.000001", "2024-01-10T24:00:00.000001"]) is None


@pytest.mark.parametrize("ticker", ["A,B", "C\\D", "null", "T\tAB", "5930"])
def test_a_known_ticker_rendered_once_in_the_lookup_is_the_copy_text_of_the_row(ticker: str) -> None:
    """A loadable row's ticker comes from the lookup, rendered once: the same COPY text the row's own value gives,
    whatever the ticker holds (delimiter, backslash, the NULL marker's spelling, a tab, digits)."""
    from quantdbops.migration.producer import prepare_source, produce

    s = sqlite3.connect(":memory:")
    for ddl in CONTRACT_DDL.values():
        s.execute(ddl)
    s.execute("INSERT INTO tickers (ticker, name, exchange, region, created_at, last_updated) "
              "VALUES (?, 'n', 'KRX', 'KR', '2024-01-01 00:00:00', '2024-01-01 00:00:00')", (ticker,))
    s.execute("INSERT INTO ohlcv_data (ticker, timeframe, date, region, open, high, low, close, volume, created_at) "
              "VALUES (?, 'D', '2025-01-02', 'KR', 10.0, 11.0, 9.5, 10.5, 100, '2025-01-02 18:00:00')", (ticker,))
    prepare_source(s, [(ticker, "KR")], {})
    assert s.execute("SELECT known FROM temp.ticker_lookup").fetchone()[0] == 1
    chunks: list[bytes] = []
    res = produce(s, "ohlcv_data", SliceFilter(), None, {}, chunks.append)
    assert res.rejects == []
    own = s.execute(f"SELECT {escape_copy_text('CAST(:t AS TEXT)')}", {"t": ticker}).fetchone()[0]
    assert copy_fields(b"".join(chunks).decode().rstrip("\n"))[:3] == [own, "KR", "D"]
    assert (own == ticker) == (ticker in ("5930",))  # escaped where it holds something COPY reads specially


def test_source_query_renders_the_copy_text_part_and_slice() -> None:
    """Text values are COPY-escaped only where they hold a special character; vocabulary values as is."""
    _, rows = _ohlcv_source([{"date": "2025-01-03", "ticker": "005930"}])
    (_rowid, reason, region, text, day, created_at, *numbers) = rows[0]
    # the region slice as text, the text part as stored bytes: a value that is no UTF-8 never fails the read
    assert (reason, region) == (None, "KR")
    assert copy_fields(text.decode()) == ["005930", "KR", "D"]
    # as stored: the producer checks and renders dates and timestamps
    assert (day, created_at) == ("2025-01-03", "2025-01-02T18:00:00")
    assert numbers[:5] == [10.0, 11.0, 9.5, 10.5, 100]


def test_vocabulary_columns_are_the_checked_literal_lists() -> None:
    from quantdbops.migration.source_plan import vocabulary_columns

    t = table("ohlcv_data")
    vocab = vocabulary_columns(t)
    assert vocab == {name for name in ("region", "timeframe") if any(name + " IN (" in e for _, e in t.checks)}
    conn = sqlite3.connect(":memory:")
    for _, expr in t.checks:
        for literal in re.findall(r"'([^']*)'", expr):  # every value a loadable row can hold needs no escape
            assert conn.execute(f"SELECT {escape_copy_text(':t')}", {"t": literal}).fetchone()[0] == literal


@pytest.mark.parametrize(
    ("rows", "numbers"),
    [
        pytest.param([(1.5, None, 7), (0.1, 2.0, None)], True, id="plain"),
        pytest.param([(1.5, 1e-07, 7), (2e-300, 1.5e300, -3.25e-9)], True, id="exponents"),
        pytest.param([(1.5, 1e-05, 7)], True, id="small-but-plain-in-json"),
        pytest.param([(-0.0, 1.5, 7)], True, id="negative-zero-first"),
        pytest.param([(1.5, -0.0, 7), (-10.0, -0.0, -0.0)], True, id="negative-zero"),
        pytest.param([(1.5, 7, -0.0)], True, id="negative-zero-last"),
        pytest.param([(-0.05, 7, -0.01)], True, id="negative-small-is-plain"),
        pytest.param([(1e-07, None, -0.0)] * 3, True, id="every-kind-on-every-row"),
        pytest.param([(1.5, "4.86", 7)], False, id="text"),
        pytest.param([(1.5, b"\x00", 7)], False, id="blob"),
    ],
)
def test_batch_rendering_is_exact_or_asks_for_a_look_at_each_value(rows: list[tuple], numbers: bool) -> None:
    """A batch of numbers comes back exactly as the row-by-row rendering spells it (exponents and negative
    zeros re-spelled inside the batch's JSON); a text or a blob gives None. (Infinities are flagged by the
    source query: see the infinity cases of test_each_bad_row_is_rejected_with_its_first_reason.)"""
    from quantdbops.migration.producer import render_numbers_json

    got = render_numbers_json(rows)
    assert (got is not None) == numbers
    if numbers:
        assert got == [render_numbers(r) for r in rows]


# --- the registry -------------------------------------------------------------------------------------------
def _contract_columns() -> dict[str, set[str]]:
    s = sqlite3.connect(":memory:")
    for ddl in CONTRACT_DDL.values():
        s.execute(ddl)
    return {n: {r[1] for r in s.execute(f'PRAGMA table_info("{n}")')} for n in CONTRACT_DDL}


@pytest.mark.parametrize("name", [t.name for t in migratable_tables()])
def test_every_source_column_the_load_reads_is_in_the_contract(name: str) -> None:
    t = table(name)
    contract = _contract_columns()
    assert t.source in contract
    assert t.source_columns() <= contract[t.source]


def test_dependency_order_puts_tickers_first_and_referenced_tables_before() -> None:
    names = [t.name for t in reversed(TABLES)]
    ordered = dependency_order(names)
    assert ordered[0] == "tickers"
    assert sorted(ordered) == sorted(names)
    position = {n: i for i, n in enumerate(ordered)}
    for t in TABLES:
        for fk in t.foreign_keys:
            if fk.ref_table != t.name:
                assert position[fk.ref_table] < position[t.name], (t.name, fk.ref_table)
    assert next(t.name for t in migratable_tables()) == "tickers"


@pytest.mark.parametrize("name", [t.name for t in migratable_tables() if t.has_region])
def test_keys_include_region_where_the_table_has_one(name: str) -> None:
    """Region slices are replaced independently, so a key must not span regions: it holds the region,
    or it is the source table's own primary key (unique across every region already)."""
    t = table(name)
    s = sqlite3.connect(":memory:")
    s.execute(CONTRACT_DDL[t.source])
    source_pk = [r[1] for r in sorted(s.execute(f'PRAGMA table_info("{t.source}")'), key=lambda r: r[5]) if r[5]]
    key_sources = [t.column(k).source_column for k in t.key]
    assert "region" in t.key or key_sources == source_pk, f"{name}: key {t.key} lacks region"


@pytest.mark.parametrize(
    ("cores", "local", "workers"),
    [(1, True, 1), (1, False, 1), (2, True, 1), (2, False, 2), (4, True, 3), (8, True, 4), (8, False, 4)],
)
def test_default_producers_leave_a_core_to_a_local_server(
    monkeypatch: pytest.MonkeyPatch, cores: int, local: bool, workers: int
) -> None:
    from quantdbops.migration import producer_pool as load

    monkeypatch.setattr(load.os, "cpu_count", lambda: cores)
    assert load.default_workers(server_shares_cores=local) == workers


@pytest.mark.parametrize(("value", "workers"), [("", None), ("3", 3), (" 1 ", 1), ("16", 16)])
def test_the_producer_count_can_be_set_on_the_workers(
    monkeypatch: pytest.MonkeyPatch, value: str, workers: int | None
) -> None:
    from quantdbops.migration import producer_pool as load

    monkeypatch.setenv(load.PRODUCERS_ENV, value)
    assert load.configured_workers(True) == (workers or load.default_workers(True))


@pytest.mark.parametrize("value", ["0", "17", "two", "-1", "2.5"])
def test_a_bad_producer_count_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from quantdbops.migration import producer_pool as load

    monkeypatch.setenv(load.PRODUCERS_ENV, value)
    with pytest.raises(ValueError, match=rf"QUANT_MIGRATION_PRODUCERS='{re.escape(value)}' is not a number .* "
                                         "Nothing was loaded"):
        load.configured_workers(False)

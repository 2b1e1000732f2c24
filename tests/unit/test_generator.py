"""The sample generator: deterministic, contract-shaped, clean by default, defects as its manifest says (a row
for every declared rule a source row can break), and every data shape keeping all of that."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO / "plugins"))

from quantdbops.registry import declared_rules, migratable_tables, table  # noqa: E402
from sample import generate  # noqa: E402
from sample.defects import KINDS, REASONS  # noqa: E402
from sample.entries import stored_value  # noqa: E402
from sample.shapes import INSERT_STAMPS, SHAPES, stamp_columns, utc_columns  # noqa: E402
from sample.source_ddl import ALL_TABLES, CONTRACT_DDL, EXTRA_DDL  # noqa: E402
from sample.universe import build_universe, region_of_code  # noqa: E402
from sample.unplantable import NOT_NULL, all_unplantable  # noqa: E402

CLEAN = {"tickers_per_region": 3, "days": 260}
DIRTY = {"tickers_per_region": 3, "days": 120, "defects": True}
SMALL = {"tickers_per_region": 2, "days": 60}
REGIONS = ("KR", "US", "CN", "HK", "JP", "VN")
TICKER_FORMATS = {
    "KR": r"0(\d{4}0|\d{4}[A-Z]|\d{3}[A-Z]0)", "US": r"[A-Z]{1,2}|[A-Z]{4,5}|[A-Z]{3}\.[AB]",
    "CN": r"[36]\d{5}|00\d{3}[1-9]", "HK": r"[012]\d{3}", "JP": r"[3-9]\d{3}", "VN": r"[A-Z]{3}",
}
NUMERIC = ("open", "high", "low", "close", "volume", "ma5", "ma20", "ma60", "ma120", "ma200", "rsi_14",
           "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower", "atr_14", "atr",
           "volume_ma20", "volume_ratio")
INDICATORS = NUMERIC[5:]
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?")


@contextmanager
def _connect(path: Path | str, rows: bool = True) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path)
    # A planted cell may hold text that is no UTF-8: read it without failing (it never equals good text).
    conn.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
    if rows:
        conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def _dump(path: Path) -> dict[str, list[tuple]]:
    with _connect(path, rows=False) as conn:
        return {t: conn.execute(f"SELECT rowid, * FROM {t} ORDER BY rowid").fetchall() for t in ALL_TABLES}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("clean") / "spock.db"
    return path, generate(path, **CLEAN)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("dirty") / "spock.db"
    return path, generate(path, **DIRTY)


def _parses(text: object, pattern: re.Pattern, parse: Callable[[str], object]) -> bool:
    if not isinstance(text, str) or not pattern.fullmatch(text):
        return False
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _valid_date(text: object) -> bool:
    return _parses(text, ISO_DATE, date.fromisoformat)


def _valid_stamp(text: object) -> bool:
    return _parses(text, STAMP, datetime.fromisoformat)


def _bad_text(value: object) -> bool:
    """Text PostgreSQL cannot hold: a blob, a NUL byte, or bytes that are no UTF-8 (read as surrogates)."""
    if isinstance(value, bytes):
        return True
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return "\0" in value


def _number(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value))


def _ohlcv_problems(row: sqlite3.Row, tickers: dict[str, str]) -> set[str]:
    """What a careful loader would object to in one ohlcv_data row (duplicates aside), by kind of problem;
    ``tickers``: the loadable tickers and their regions."""
    problems = set()
    bad = {c for c in ("ticker", "timeframe", "region") if _bad_text(row[c])}
    if bad:
        problems.add("invalid_text")
    if "timeframe" not in bad and row["timeframe"] != "D":
        problems.add("timeframe_1d" if row["timeframe"] == "1d" else "invalid_value")
    if row["region"] is None:
        problems.add("null_region")
    elif "region" not in bad and row["region"] not in REGIONS:
        problems.add("invalid_value")
    if row["ticker"] not in tickers or (row["region"] in REGIONS and tickers[row["ticker"]] != row["region"]):
        problems.add("orphan")
    if not _valid_date(row["date"]):
        problems.add("malformed_date")
    if not _valid_stamp(row["created_at"]):
        problems.add("malformed_timestamp")
    values = [row[c] for c in NUMERIC]
    if not all(map(_number, values)) or not isinstance(row["volume"], int):
        problems.add("non_numeric")
    elif not (row["high"] >= max(row["open"], row["close"]) and row["low"] <= min(row["open"], row["close"])):
        problems.add("ohlc_violation")
    elif min(row[c] for c in ("open", "high", "low", "close")) <= 0 or row["volume"] < 0:
        problems.add("invalid_value")
    return problems


def _loadable_tickers(conn: sqlite3.Connection, manifest: dict) -> dict[str, str]:
    """The tickers the loader keeps (a planted tickers row is quarantined) and their regions."""
    refused = {e["rowid"] for e in manifest["planted"] if e["table"] == "tickers" and e["expect"] == "reject"}
    return {t: r for rowid, t, r in conn.execute("SELECT rowid, ticker, region FROM tickers") if rowid not in refused}


Series = Iterator[tuple[str, list[sqlite3.Row]]]


def _series(conn: sqlite3.Connection, skip: set[int] = frozenset()) -> Series:
    """Each ticker's rows as the loader would keep them (rows in `skip` rejected), oldest first."""
    rows = conn.execute("SELECT rowid AS rid, * FROM ohlcv_data WHERE ticker IN (SELECT ticker FROM tickers)"
                        " ORDER BY ticker, date").fetchall()
    by_ticker: dict[str, list[sqlite3.Row]] = {}
    for row in rows:
        if row["rid"] not in skip:
            by_ticker.setdefault(row["ticker"], []).append(row)
    yield from by_ticker.items()


def _max_abs_z(values: list[float], window: int | None) -> float:
    """Largest |z| of any value against the population mean/deviation of a window holding it (or of all)."""
    runs = [values] if window is None else [values[j:j + window] for j in range(len(values) - window + 1)]
    worst = 0.0
    for run in runs:
        mean = sum(run) / len(run)
        sd = math.sqrt(sum((v - mean) ** 2 for v in run) / len(run))
        worst = max(worst, max(abs(v - mean) for v in run) / sd)
    return worst


def _returns(rows: list[sqlite3.Row]) -> list[float]:
    return [b["close"] / a["close"] - 1.0 for a, b in itertools.pairwise(rows)]


# -- determinism ----------------------------------------------------------------------------------------
def test_same_seed_gives_same_contents(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert generate(a, **SMALL, defects=True) == generate(b, **SMALL, defects=True)
    assert _dump(a) == _dump(b)


def _rows_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for name, rows in _dump(path).items():
        digest.update(f"{name}:{rows!r}".encode())
    return digest.hexdigest()[:16]


def test_the_sample_shape_is_the_sample_it_always_was(tmp_path: Path) -> None:
    """Every table's rows, hashed: the shapes were added without changing one value of the sample."""
    path = tmp_path / "s.db"
    generate(path, tickers_per_region=2, days=40)
    assert _rows_digest(path) == "1f569d9800f46f5b"  # computed before the shapes existed


def test_different_seed_gives_different_contents(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    generate(a, tickers_per_region=2, days=40, seed=1)
    generate(b, tickers_per_region=2, days=40, seed=2)
    assert _dump(a)["ohlcv_data"] != _dump(b)["ohlcv_data"]


def test_defects_change_no_clean_row_but_the_planted_ones(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    generate(a, **SMALL)
    manifest = generate(b, **SMALL, defects=True)
    clean, dirty = _dump(a), _dump(b)
    planted = {(e["table"], e["rowid"]) for e in manifest["planted"] if "rowid" in e}
    # Gaps delete bars and level shifts rewrite a ticker's later bars: those tickers are left out here.
    moved = {e["ticker"] for e in manifest["planted"] if e["kind"] in ("gap", "extreme_return")}
    for name in ALL_TABLES:
        before = {row[0]: row for row in clean[name]}
        after = {row[0]: row for row in dirty[name]}
        kept = [r for r in before if (name, r) not in planted
                and not (name == "ohlcv_data" and before[r][2] in moved)]  # (rowid, id, ticker, ...)
        assert [before[r] for r in kept] == [after.get(r) for r in kept], name
        assert all((name, r) in planted for r in set(after) - set(before)), name


def test_generate_overwrites_and_leaves_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_text("not a database")
    generate(path, tickers_per_region=1, days=30)
    assert _dump(path)["tickers"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]


# -- shape ----------------------------------------------------------------------------------------------
def test_embedded_ddl_parses_into_contract_and_extra_tables() -> None:
    conn = sqlite3.connect(":memory:")
    for ddl in (*CONTRACT_DDL.values(), *EXTRA_DDL.values()):
        conn.execute(ddl)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    names.discard("sqlite_sequence")
    assert len(CONTRACT_DDL) == 13 and len(EXTRA_DDL) == 5
    assert names == set(CONTRACT_DDL) | set(EXTRA_DDL)
    assert set(EXTRA_DDL) == {"kelly_sizing", "filter_cache_stage0", "filter_cache_stage1",
                              "filter_cache_stage2", "kis_api_logs"}


def test_embedded_ddl_is_the_shared_contract_verbatim() -> None:
    contract = REPO.parent / "shared" / "spock_source_schema.sql"
    if not contract.exists():
        pytest.skip("the shared contract is not next to the repository")
    statements = re.findall(r"CREATE TABLE \w+ \(.*?\n\);", contract.read_text(), flags=re.DOTALL)
    assert statements == list(CONTRACT_DDL.values())


def test_file_tables_have_exactly_the_declared_columns(clean: tuple[Path, dict]) -> None:
    path, _ = clean
    reference = sqlite3.connect(":memory:")
    for ddl in (*CONTRACT_DDL.values(), *EXTRA_DDL.values()):
        reference.execute(ddl)
    with _connect(path, rows=False) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables - {"sqlite_sequence"} == set(ALL_TABLES)
        for table in ALL_TABLES:
            pragma = f"PRAGMA table_info({table})"
            assert conn.execute(pragma).fetchall() == reference.execute(pragma).fetchall(), table


@pytest.mark.parametrize("table", ALL_TABLES)
def test_every_table_has_rows(clean: tuple[Path, dict], table: str) -> None:
    _, manifest = clean
    assert manifest["row_counts"][table] > 0


# -- sizes, regions, calendar ---------------------------------------------------------------------------
@pytest.mark.parametrize(("tickers_per_region", "days"), [
    pytest.param(2, 30, id="minimal"),
    pytest.param(4, 75, id="small"),
])
def test_sizes_follow_the_flags(tmp_path: Path, tickers_per_region: int, days: int) -> None:
    manifest = generate(tmp_path / "s.db", tickers_per_region=tickers_per_region, days=days)
    counts = manifest["row_counts"]
    assert counts["ohlcv_data"] == 6 * tickers_per_region * days
    assert counts["tickers"] == 6 * tickers_per_region
    assert counts["market_sentiment"] == days
    assert counts["exchange_rate_history"] == counts["global_market_indices"] == 5 * days
    assert manifest["row_counts_by_region"]["ohlcv_data"] == dict.fromkeys(REGIONS, tickers_per_region * days)
    assert manifest["row_counts_by_region"]["tickers"] == dict.fromkeys(REGIONS, tickers_per_region)
    assert manifest["planted"] == []


def test_manifest_counts_match_the_file(clean: tuple[Path, dict]) -> None:
    path, manifest = clean
    with _connect(path, rows=False) as conn:
        for table, n in manifest["row_counts"].items():
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == n, table
    json.dumps(manifest)  # serialisable as is


@pytest.mark.parametrize(("end", "last"), [
    pytest.param(date(2025, 10, 17), date(2025, 10, 17), id="friday"),
    pytest.param(date(2024, 3, 10), date(2024, 3, 8), id="sunday-ends-on-friday"),
])
def test_business_days_only_ending_at_end_date(tmp_path: Path, end: date, last: date) -> None:
    path = tmp_path / "s.db"
    generate(path, tickers_per_region=1, days=45, end_date=end)
    with _connect(path, rows=False) as conn:
        query = "SELECT DISTINCT date FROM ohlcv_data ORDER BY 1"
        dates = [date.fromisoformat(d) for (d,) in conn.execute(query)]
        per_ticker = conn.execute("SELECT COUNT(*) FROM ohlcv_data GROUP BY ticker").fetchall()
    assert len(dates) == 45 and max(dates) == last
    assert all(d.weekday() < 5 for d in dates)
    assert {n for (n,) in per_ticker} == {45}


def test_tickers_are_unique_across_regions_and_follow_their_formats() -> None:
    universe = build_universe(random.Random(7), 600)
    codes = [t.code for t in universe]
    assert len(codes) == len(set(codes))
    for t in universe:
        assert re.fullmatch(TICKER_FORMATS[t.region], t.code), (t.region, t.code)
        assert region_of_code(t.code) == t.region
    assert {"005930", "0000D0", "00088K", "AAPL", "BRK.B", "600519", "0700", "7203", "VCB"} <= set(codes)
    etf_share = sum(t.asset_type == "ETF" for t in universe) / len(universe)
    assert 0.08 <= etf_share <= 0.12


def test_tickers_in_the_file_match_their_exchange_and_currency(clean: tuple[Path, dict]) -> None:
    path, _ = clean
    expected = {"KR": ({"KRX"}, "KRW"), "US": ({"NASDAQ", "NYSE"}, "USD"), "CN": ({"SSE", "SZSE"}, "CNY"),
                "HK": ({"HKEX"}, "HKD"), "JP": ({"TSE"}, "JPY"), "VN": ({"HOSE"}, "VND")}
    with _connect(path) as conn:
        rows = conn.execute("SELECT ticker, region, exchange, currency FROM tickers").fetchall()
    assert {r["region"] for r in rows} == set(REGIONS)
    for r in rows:
        exchanges, currency = expected[r["region"]]
        assert r["exchange"] in exchanges and r["currency"] == currency


# -- a clean file is clean ------------------------------------------------------------------------------
def test_clean_ohlcv_rows_have_no_problems(clean: tuple[Path, dict]) -> None:
    path, _ = clean
    with _connect(path) as conn:
        tickers = dict(conn.execute("SELECT ticker, region FROM tickers").fetchall())
        bad = [dict(r) for r in conn.execute("SELECT * FROM ohlcv_data") if _ohlcv_problems(r, tickers)]
        types = conn.execute(
            "SELECT DISTINCT typeof(open), typeof(close), typeof(volume) FROM ohlcv_data").fetchall()
    assert bad == []
    assert [tuple(t) for t in types] == [("real", "real", "integer")]


def test_clean_timestamps_and_flags_follow_the_conventions(clean: tuple[Path, dict]) -> None:
    path, _ = clean
    with _connect(path, rows=False) as conn:
        created = [c for (c,) in conn.execute("SELECT created_at FROM ohlcv_data")]
        order_times = [c for (c,) in conn.execute("SELECT order_time FROM trades")]
        flags = {f for (f,) in conn.execute(
            "SELECT is_active FROM tickers UNION SELECT is_spac FROM stock_details")}
        sides = {s for (s,) in conn.execute("SELECT side FROM trades")}
        signals = {s for (s,) in conn.execute("SELECT signal FROM technical_analysis")}
    assert all(datetime.fromisoformat(c).isoformat() == c and "T" in c for c in created)
    assert any("." in c for c in created) and any("." not in c for c in created)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", t) for t in order_times)
    assert flags <= {0, 1} and sides <= {"BUY", "SELL"} and signals <= {"BUY", "WATCH", "AVOID"}


@pytest.mark.parametrize("window", [pytest.param(20, id="rolling-20"), pytest.param(60, id="rolling-60"),
                                    pytest.param(None, id="full-history")])
@pytest.mark.parametrize("quantity", ["return", "volume"])
def test_clean_file_has_no_extreme_values(clean: tuple[Path, dict], quantity: str,
                                          window: int | None) -> None:
    path, _ = clean
    with _connect(path) as conn:
        for ticker, rows in _series(conn):
            values = _returns(rows) if quantity == "return" else [float(r["volume"]) for r in rows]
            assert _max_abs_z(values, window) <= 3.0, ticker


def test_indicators_are_null_until_their_window_is_full(clean: tuple[Path, dict]) -> None:
    path, _ = clean
    with _connect(path) as conn:
        for _, rows in _series(conn):
            assert [r["ma200"] is None for r in rows] == [i < 199 for i in range(len(rows))]
            assert [r["rsi_14"] is None for r in rows] == [i < 14 for i in range(len(rows))]
            assert [r["macd_signal"] is None for r in rows] == [i < 33 for i in range(len(rows))]
            assert rows[4]["ma5"] == pytest.approx(sum(r["close"] for r in rows[:5]) / 5)
            assert rows[-1]["bb_middle"] == rows[-1]["ma20"]
            assert rows[-1]["bb_lower"] < rows[-1]["ma20"] < rows[-1]["bb_upper"]
            assert 0 <= rows[-1]["rsi_14"] <= 100


# -- defects --------------------------------------------------------------------------------------------
def test_every_kind_is_planted(dirty: tuple[Path, dict]) -> None:
    _, manifest = dirty
    assert set(manifest["planted_counts"]) == set(KINDS)
    assert all(manifest["planted_counts"][kind] >= 3 for kind in KINDS)
    assert len(manifest["planted"]) == sum(manifest["planted_counts"].values())


def test_planted_entries_say_what_the_loader_must_do(dirty: tuple[Path, dict]) -> None:
    _, manifest = dirty
    for entry in manifest["planted"]:
        if entry["expect"] == "reject":
            assert entry["reason"] in REASONS and isinstance(entry["rowid"], int), entry
            assert entry["label"] == f"{entry['reason']}:{entry['detail']}", entry
        elif entry["expect"] == "map":
            assert entry["mapped"] and isinstance(entry["rowid"], int), entry
        else:
            assert entry["expect"] == "load" and entry["kind"] in ("gap", "extreme_return", "new_listing"), entry
    reasons = {e["reason"] for e in manifest["planted"] if e["expect"] == "reject"}
    assert reasons == set(REASONS)


def test_every_declared_rule_is_planted_or_said_why_not(dirty: tuple[Path, dict]) -> None:
    """A rule added to the registry fails here until the generator plants a row breaking it (or says why no
    source row of the contract can)."""
    _, manifest = dirty
    rejects = [e for e in manifest["planted"] if e["expect"] == "reject"]
    notes = {(u.table, u.label): u for u in all_unplantable()}
    missing = []
    for t in migratable_tables():
        for rule in declared_rules(t):
            note = notes.get((t.name, rule.label))
            own = [e for e in rejects if e["table"] == t.name and e["label"] == rule.label and "breaks" not in e]
            through = [e for e in rejects if e["table"] == t.name and e.get("breaks") == rule.label]
            if note is None and not own:
                missing.append(f"{t.name} {rule.label}")
            if note is not None:
                assert note.why and not own, (t.name, rule.label)
                assert bool(through) == bool(note.reported_as), (t.name, rule.label)
                assert all(e["label"] == note.reported_as for e in through), (t.name, rule.label)
    assert missing == [], "declared rules the generator plants no row for"
    listed = {(r["table"], r["label"]): r for r in manifest["rules"]}
    assert set(listed) == {(t.name, r.label) for t in migratable_tables() for r in declared_rules(t)}
    assert all(r["rowids"] or r["why"] for r in listed.values())


@pytest.mark.parametrize("note", [pytest.param(u, id=f"{u.table}-{u.label}") for u in all_unplantable()
                                  if u.cause == NOT_NULL])
def test_a_null_the_notes_call_unplantable_is_refused_by_the_contract(note: object) -> None:
    """The contract itself refuses the NULL: the note is true of every file of the real schema."""
    t = table(note.table)  # type: ignore[attr-defined]
    column = note.why.split(" ")[0].split(".")[1] if "." in note.why.split(" ")[0] \
        else t.column(t.derived[note.label.split(":")[1]]).source_column  # type: ignore[attr-defined]
    conn = sqlite3.connect(":memory:")
    conn.execute(CONTRACT_DDL[t.source])
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        conn.execute(f'INSERT INTO "{t.source}" ("{column}") VALUES (NULL)')


def _stored(conn: sqlite3.Connection, table_name: str, rowid: int, column: str) -> object:
    storage, raw = conn.execute(f'SELECT typeof("{column}"), CASE WHEN typeof("{column}") = \'text\' THEN '
                                f'CAST("{column}" AS BLOB) ELSE "{column}" END FROM "{table_name}" WHERE rowid = ?',
                                (rowid,)).fetchone()
    return stored_value(storage, raw)


def test_planted_values_are_in_the_file(dirty: tuple[Path, dict]) -> None:
    path, manifest = dirty
    with _connect(path) as conn:
        for entry in manifest["planted"]:
            if "column" not in entry:
                continue
            values = entry.get("values") or {entry["column"]: entry["value"]}
            assert {c: _stored(conn, entry["table"], entry["rowid"], c) for c in values} == values, entry


@pytest.mark.parametrize(("table_name", "column", "storage", "check"), [
    pytest.param("ohlcv_data", "volume_ratio", "real", lambda v: v == {"real": "inf"}, id="plus-infinity"),
    pytest.param("ohlcv_data", "macd_hist", "real", lambda v: v == {"real": "-inf"}, id="minus-infinity"),
    pytest.param("tickers", "name", "text", lambda v: "\0" in v, id="nul-byte"),
    pytest.param("tickers", "name_eng", "text", lambda v: isinstance(v, dict) and "text_hex" in v, id="not-utf8"),
    pytest.param("tickers", "exchange", "blob", lambda v: isinstance(v, dict) and "blob_hex" in v, id="blob"),
    pytest.param("tickers", "lot_size", "integer", lambda v: v == 2**31, id="int-out-of-range"),
    pytest.param("etf_details", "aum", "real", lambda v: not float(v).is_integer(), id="real-in-bigint"),
])
def test_the_poison_cells_are_planted(dirty: tuple[Path, dict], table_name: str, column: str, storage: str,
                                      check: object) -> None:
    """Cells the loader must quarantine row by row without failing the table: each planted, alone in its row."""
    path, manifest = dirty
    entries = [e for e in manifest["planted"] if e["table"] == table_name and e.get("column") == column
               and e["expect"] == "reject"]
    assert entries
    with _connect(path) as conn:
        found = [(conn.execute(f'SELECT typeof("{column}") FROM "{table_name}" WHERE rowid = ?',
                               (e["rowid"],)).fetchone()[0], _stored(conn, table_name, e["rowid"], column))
                 for e in entries]
    assert any(kind == storage and check(value) for kind, value in found), found  # type: ignore[operator]


def test_each_planted_ohlcv_row_has_exactly_its_one_problem(dirty: tuple[Path, dict]) -> None:
    path, manifest = dirty
    expected = {"null_region": {"null_region"}, "timeframe_1d": {"timeframe_1d"}, "orphan": {"orphan"},
                "malformed_date": {"malformed_date"}, "non_numeric": {"non_numeric"},
                "ohlc_violation": {"ohlc_violation"}}
    planted = {e["rowid"]: e for e in manifest["planted"] if e["table"] == "ohlcv_data" and "rowid" in e
               and e["kind"] != "extreme_return"}
    with _connect(path) as conn:
        tickers = _loadable_tickers(conn, manifest)
        for row in conn.execute("SELECT rowid AS rid, * FROM ohlcv_data"):
            entry = planted.get(row["rid"])
            if entry is None:
                assert _ohlcv_problems(row, tickers) == set(), dict(row)
            elif entry["kind"] == "duplicate_spelling":
                assert _ohlcv_problems(row, tickers) == {"timeframe_1d" if entry["column"] == "timeframe"
                                                         else "null_region"}
                kept = conn.execute("SELECT * FROM ohlcv_data WHERE rowid = ?",
                                    (entry["kept_rowid"],)).fetchone()
                assert _ohlcv_problems(kept, tickers) == set() and entry["kept_rowid"] not in planted
                for column in ("ticker", "date", "open", "close", "volume", "ma20"):
                    assert kept[column] == row[column]
            elif entry["kind"] == "declared_rule":
                # A bad ticker cell also leaves the row's ticker unknown: one cell, one problem.
                also = {"orphan"} if entry["label"] == "invalid_text:ticker" else set()
                assert _ohlcv_problems(row, tickers) == {entry["reason"]} | also, entry
            else:
                assert _ohlcv_problems(row, tickers) == expected[entry["kind"]], entry
    rowids = [(e["table"], e["rowid"]) for e in manifest["planted"] if "rowid" in e]
    assert len(rowids) == len(set(rowids))


def test_orphans_reference_no_ticker(dirty: tuple[Path, dict]) -> None:
    path, manifest = dirty
    orphans = [e for e in manifest["planted"] if e["kind"] == "orphan"]
    assert {e["table"] for e in orphans} == {"stock_details", "etf_holdings", "ohlcv_data"}
    with _connect(path, rows=False) as conn:
        tickers = {t for (t,) in conn.execute("SELECT ticker FROM tickers")}
        null_region = conn.execute("SELECT COUNT(*) FROM stock_details WHERE region IS NULL").fetchone()[0]
    assert all(e["ticker"] not in tickers and e["region"] is None for e in orphans)
    assert null_region == sum(e["table"] == "stock_details" for e in orphans)


def _loaded(conn: sqlite3.Connection, manifest: dict) -> Series:
    rejected = {e["rowid"] for e in manifest["planted"]
                if e["table"] == "ohlcv_data" and e["expect"] == "reject"}
    return _series(conn, rejected)


def test_planted_gaps_are_the_only_gaps_the_loader_keeps(dirty: tuple[Path, dict]) -> None:
    path, manifest = dirty
    planted = {(e["ticker"], e["prev_date"], e["next_date"], e["gap_days"])
               for e in manifest["planted"] if e["kind"] == "gap"}
    with _connect(path) as conn:
        found = set()
        for ticker, rows in _loaded(conn, manifest):
            for a, b in itertools.pairwise(rows):
                days = (date.fromisoformat(b["date"]) - date.fromisoformat(a["date"])).days
                if days > 3:
                    found.add((ticker, a["date"], b["date"], days))
        for entry in manifest["planted"]:
            if entry["kind"] == "gap":
                marks = ",".join("?" * len(entry["deleted_rowids"]))
                assert conn.execute(f"SELECT COUNT(*) FROM ohlcv_data WHERE rowid IN ({marks})",
                                    entry["deleted_rowids"]).fetchone()[0] == 0
    assert found == planted


def test_planted_extreme_returns_are_the_only_extreme_returns(dirty: tuple[Path, dict]) -> None:
    path, manifest = dirty
    planted = {(e["ticker"], e["date"]) for e in manifest["planted"] if e["kind"] == "extreme_return"}
    found = set()
    with _connect(path) as conn:
        for ticker, rows in _loaded(conn, manifest):
            returns = _returns(rows)
            mean = sum(returns) / len(returns)
            sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
            found |= {(ticker, row["date"]) for row, r in zip(rows[1:], returns, strict=True)
                      if abs(r - mean) / sd > 3.0}
    assert found == planted


@pytest.mark.parametrize("kwargs", [
    pytest.param({"days": 29}, id="too-few-days"),
    pytest.param({"tickers_per_region": 1, "defects": True}, id="too-few-tickers-for-defects"),
    pytest.param({"tickers_per_region": 0}, id="no-tickers"),
    pytest.param({"days": 59, "defects": True}, id="too-few-days-for-defects"),
    pytest.param({"shape": "csv"}, id="unknown-shape"),
])
def test_generate_refuses_sizes_it_cannot_honour(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path / "s.db", **kwargs)


# -- shapes ---------------------------------------------------------------------------------------------
SHAPED = {"tickers_per_region": 3, "days": 120}


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    out = {}
    for shape in SHAPES:
        path = tmp_path_factory.mktemp(shape) / "spock.db"
        out[shape] = path, generate(path, **SHAPED, shape=shape)
    return out


def _columns(path: Path, table_name: str, columns: list[str] | None = None) -> dict[str, list[object]]:
    """A table's columns (all, or ``columns``), each a list of its values in rowid order."""
    with _connect(path, rows=False) as conn:
        names = columns or [r[1] for r in conn.execute(f'PRAGMA table_info("{table_name}")')]
        rows = conn.execute(f"SELECT {', '.join(f'{chr(34)}{n}{chr(34)}' for n in names)} FROM \"{table_name}\" "
                            "ORDER BY rowid").fetchall()
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def _reals(path: Path) -> dict[tuple[str, str], list[object]]:
    with _connect(path, rows=False) as conn:
        pairs = [(t, r[1]) for t in ALL_TABLES for r in conn.execute(f"PRAGMA table_info({t})") if r[2] == "REAL"]
    return {(t, c): _columns(path, t, [c])[c] for t, c in pairs}


def _significant_digits(value: float) -> int:
    mantissa = repr(abs(value)).split("e")[0].replace(".", "")
    return len(mantissa.strip("0"))


def _near(a: object, b: object) -> bool:
    """The same value, or (numbers) one a price adjustment of at most 3% moves, rounding included."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 0.035 * abs(b) + 1
    return a == b


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_every_shape_holds_the_sample_s_rows(shaped: dict[str, tuple[Path, dict]], shape: str) -> None:
    """The same rows and counts: only the spelling of the shape's own columns differs (in full precision the
    prices are adjusted, so numbers computed from them move with them; iso-micro's OHLCV indicators are
    rounded and filled, see the next test)."""
    sample, sample_manifest = shaped["sample"]
    path, manifest = shaped[shape]
    assert manifest["row_counts"] == sample_manifest["row_counts"] and manifest["shape"] == shape
    stamps = stamp_columns()
    respelled = set()
    for name in ALL_TABLES:
        own = set(stamps.get(name, ())) & set(INSERT_STAMPS if shape == "sqlite-now" else stamps.get(name, ()))
        if shape == "iso-micro" and name == "ohlcv_data":
            own |= set(INDICATORS)
        before, after = _columns(sample, name), _columns(path, name)
        if shape == "full-precision":
            assert all(map(_near, itertools.chain(*after.values()), itertools.chain(*before.values()))), name
            own = {c for c in after if before[c] != after[c]}
        assert {c: v for c, v in after.items() if c not in own} == {c: v for c, v in before.items() if c not in own}
        respelled |= {(name, c) for c in own if before[c] != after[c]}
    assert ("ohlcv_data", "close" if shape == "full-precision" else "created_at") in respelled


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_every_shape_plants_the_same_defects(tmp_path: Path, shape: str) -> None:
    sample, shaped_ = ([(e["kind"], e["table"], e.get("rowid"), e.get("label"))
                        for e in generate(tmp_path / f"{s}.db", **SMALL, defects=True, shape=s)["planted"]]
                       for s in ("sample", shape))
    assert shaped_ == sample


def test_iso_micro_stamps_are_distinct_isoformat_with_microseconds(shaped: dict[str, tuple[Path, dict]]) -> None:
    sample, path = shaped["sample"][0], shaped["iso-micro"][0]
    seen: list[str] = []
    for name, columns in stamp_columns().items():
        before, after = _columns(sample, name, list(columns)), _columns(path, name, list(columns))
        for column in columns:
            for old, new in zip(before[column], after[column], strict=True):
                if new is None:
                    continue
                moment = datetime.fromisoformat(new)
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}", new) and moment.isoformat() == new
                assert abs(moment - datetime.fromisoformat(old)) < timedelta(seconds=1), (name, column, old, new)
                seen.append(new)
    assert len(seen) == len(set(seen)) > 0


def test_iso_micro_indicators_are_filled_with_four_decimals(shaped: dict[str, tuple[Path, dict]]) -> None:
    """As in a file a user brought: every indicator of a ticker with any computed value is filled (the warm-up
    from the first computed value) and carries at most four decimals, each the sample's value rounded."""
    columns = ["ticker", *INDICATORS]
    before, after = (_columns(shaped[s][0], "ohlcv_data", columns) for s in ("sample", "iso-micro"))
    assert before["ticker"] == after["ticker"]
    filled = 0
    for name in INDICATORS:
        for _, rows in itertools.groupby(zip(before["ticker"], before[name], after[name], strict=True),
                                         key=lambda r: r[0]):
            pairs = [(old, new) for _, old, new in rows]
            computed = [old for old, _ in pairs if old is not None]
            if not computed:
                assert all(new is None for _, new in pairs), name  # a history shorter than the window
                continue
            for old, new in pairs:
                assert isinstance(new, float) and len(repr(new).partition(".")[2]) <= 4, (name, new)
                assert new == round(computed[0] if old is None else old, 4), (name, old, new)
                filled += old is None
    assert filled > 0


def test_full_precision_reals_carry_15_to_17_significant_digits(shaped: dict[str, tuple[Path, dict]]) -> None:
    for shape, low, high in (("full-precision", 15, 17), ("sample", 1, 17)):
        found = {_significant_digits(v) for values in _reals(shaped[shape][0]).values() for v in values
                 if isinstance(v, float) and not v.is_integer()}
        assert found and low <= min(found) and max(found) <= high, (shape, sorted(found))
    sample_prices = _columns(shaped["sample"][0], "ohlcv_data", ["close"])["close"]
    assert max(_significant_digits(v) for v in sample_prices) <= 8  # the sample's prices are on their tick
    bars = _columns(shaped["full-precision"][0], "ohlcv_data", ["open", "high", "low", "close"])
    for o, h, lo, c in zip(*bars.values(), strict=True):
        assert 0 < lo <= min(o, c) <= max(o, c) <= h


def test_sqlite_now_insert_stamps_come_in_bursts(shaped: dict[str, tuple[Path, dict]]) -> None:
    sample, path = shaped["sample"][0], shaped["sqlite-now"][0]
    for name, columns in stamp_columns().items():
        after = _columns(path, name, list(columns))
        for column in columns:
            if column not in INSERT_STAMPS:  # an event's time (an order, a rate's fetch): as the sample has it
                assert after[column] == _columns(sample, name, [column])[column], (name, column)
                continue
            values = [v for v in after[column] if v is not None]
            assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", v) for v in values), (name, column)
    created = _columns(path, "ohlcv_data", ["created_at"])["created_at"]
    runs = [len(list(group)) for _, group in itertools.groupby(created)]
    assert created == sorted(created)  # one run of inserts, in rowid order
    assert max(runs) >= 50 and len(runs) <= len(created) / 50  # many consecutive rows share each second


def test_sqlite_now_stamps_keep_their_column_s_time_zone(shaped: dict[str, tuple[Path, dict]]) -> None:
    """A UTC column (SQLite's CURRENT_TIMESTAMP) holds UTC: the row's local fetch time, then its insert; the
    other columns hold local time, never before the day their row is about."""
    path = shaped["sqlite-now"][0]
    assert ("exchange_rate_history", "created_at") in utc_columns()
    fx = _columns(path, "exchange_rate_history", ["rate_date", "timestamp", "created_at"])
    seoul = ZoneInfo("Asia/Seoul")
    for day, fetched, created in zip(*fx.values(), strict=True):
        local = datetime.fromisoformat(created).replace(tzinfo=ZoneInfo("UTC")).astimezone(seoul).replace(tzinfo=None)
        assert local.date().isoformat() == day and datetime.fromisoformat(fetched) <= local, (day, fetched, created)
    for t in migratable_tables():
        kind = t.column(t.time_column).kind if t.time_column else None
        if kind != "date" or t.source == "exchange_rate_history":
            continue
        column = t.derived.get(t.time_column) or t.column(t.time_column).source_column  # trade_date: order_time
        for stamp in (c for c in stamp_columns()[t.source] if c in INSERT_STAMPS):
            rows = _columns(path, t.source, [column, stamp])
            assert all(s is None or s[:10] >= d[:10] for d, s in zip(rows[column], rows[stamp], strict=True)), t.name


# -- the CLI --------------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "generate_sample.py"), *args],
                          capture_output=True, text=True, cwd=REPO, check=False)


@pytest.mark.parametrize("shape", SHAPES)
def test_cli_writes_the_file_and_its_manifest(tmp_path: Path, shape: str) -> None:
    out = tmp_path / "s.db"
    result = _cli("--out", str(out), "--tickers-per-region", "2", "--days", "60", "--defects", "--shape", shape)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "s.db.manifest.json").read_text())
    assert manifest == generate(tmp_path / "again.db", **SMALL, defects=True, shape=shape)
    assert manifest["shape"] == shape and _dump(out) == _dump(tmp_path / "again.db")
    assert "ohlcv_data" in result.stdout and " s " in result.stdout and "declared rules:" in result.stdout


def test_cli_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "s.db"
    out.write_text("keep me")
    result = _cli("--out", str(out), "--tickers-per-region", "1", "--days", "30")
    assert result.returncode == 2 and out.read_text() == "keep me"
    assert _cli("--out", str(out), "--tickers-per-region", "1", "--days", "30", "--force").returncode == 0

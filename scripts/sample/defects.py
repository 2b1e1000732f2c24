"""Plant the real data's problems into a clean sample, and describe every planted row.

Each kind is planted a handful of times (`per_kind`); then `declared.plant_declared` adds a row for every
rule of the registry's declaration (`registry.declared_rules`) the kinds left unbroken, so the quarantine
shows each rule a source row can break. Each planted row carries exactly one problem (one cell, or the pair
a swap exchanges; a bad ticker cell also leaves the row's ticker unknown, and a row planted for a rule that is
reported as another breaks it only through that other rule's cause), and the manifest entry says what the
loader must do with it: "reject" (with one of
REASONS and the rule's label, "reason:detail", as the loader reports it), "map" (load with the corrected
values in "mapped") or "load" (valid rows the data-quality checks must flag, and the new listings the
declared rows of per-ticker tables are planted on).

The data-quality checks run on what the loader keeps, so planting respects them too:
* gap and extreme_return tickers carry no other defect;
* a row the loader rejects is a Tuesday-Thursday one (its removal leaves no calendar gap over 3 days),
  at least 3 rows from any other planted row of its ticker, and removing it leaves no extreme return.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from quantdbops.registry import OHLCV_DATA, REASONS
from sample import declared
from sample.entries import Entry, manifest_value, placeholder, reject
from sample.ohlcv import Market
from sample.prices import full_bar, indicator_columns, price_decimals, round_price, series_calm
from sample.stamps import iso_stamp
from sample.universe import REGION_BY_CODE, REGIONS, SECTORS, Ticker, fresh_codes, region_of_code

__all__ = ["KINDS", "REASONS", "Planter", "check_plantable", "plant"]

KINDS: tuple[str, ...] = (
    "null_region", "timeframe_1d", "duplicate_spelling", "malformed_date", "non_numeric", "ohlc_violation",
    "orphan", "malformed_timestamp", "gap", "extreme_return", *declared.KINDS,
)
# Source column -> target column of ohlcv_data (rsi_14 is loaded as rsi): a reject's label names the target's.
_OHLCV_TARGET = {c.source_column: c.name for c in OHLCV_DATA.columns if c.source_column}
_PRICE_COLUMNS = ("open", "high", "low", "close")
_INDICATOR_COLUMNS = ("ma5", "ma20", "ma60", "ma120", "ma200", "rsi_14", "macd", "macd_signal", "macd_hist",
                      "bb_upper", "bb_middle", "bb_lower", "atr_14", "atr", "volume_ma20", "volume_ratio")
_OHLCV_COLUMNS = ("ticker", "timeframe", "date", "region", *_PRICE_COLUMNS, "volume", *_INDICATOR_COLUMNS,
                  "created_at")
_MIN_SPACING = 3
# The smallest sample that holds every kind and a row per declared rule (ohlcv_data alone takes some 50
# planted rows, each at least 3 trading days from the next on its ticker).
MIN_TICKERS_PER_REGION = 2
MIN_DAYS = 60


def per_kind(n_tickers: int) -> int:
    """How many of each kind: 3, growing to 6 on samples of 1,200+ tickers."""
    return 3 + min(3, n_tickers // 400)


def check_plantable(tickers_per_region: int, days: int) -> None:
    """Raise ValueError when a sample is too small to hold every kind of defect and every declared rule's row."""
    if tickers_per_region < MIN_TICKERS_PER_REGION or days < MIN_DAYS:
        raise ValueError(f"defects need tickers_per_region >= {MIN_TICKERS_PER_REGION} and days >= {MIN_DAYS}")


@dataclass
class _Series:
    """One ticker's canonical rows as generated, plus what has been planted on them."""

    ticker: Ticker
    ids: list[int]
    dates: list[str]
    opens: list[float]
    highs: list[float]
    lows: list[float]
    closes: list[float]
    volumes: list[int]
    used: set[int] = field(default_factory=set)
    rejected: set[int] = field(default_factory=set)

    def calm_without(self, drop: set[int]) -> bool:
        keep = [i for i in range(len(self.ids)) if i not in drop]
        return series_calm([self.closes[i] for i in keep], [self.volumes[i] for i in keep])


_Fits = Callable[[_Series, int], bool]


def _weekday(day: str) -> int:
    return date.fromisoformat(day).weekday()


class Planter:
    """The planting state: the file, the draws, the tickers whose rows may be planted on, the manifest so far."""

    def __init__(self, conn: sqlite3.Connection, rng: random.Random, market: Market) -> None:
        self.conn, self.rng, self.market = conn, rng, market
        self.k = per_kind(len(market.tickers))
        order = list(market.tickers)
        rng.shuffle(order)
        self.extreme, self.gapped, self.pool = order[:self.k], order[self.k:2 * self.k], order[2 * self.k:]
        self.cursor = 0
        self.cache: dict[str, _Series] = {}
        self.taken = {t.code for t in market.tickers}
        self.planted: list[Entry] = []
        self.ta_used = 0  # the technical_analysis row malformed_date took; malformed_timestamp skips it

    # -- reading -------------------------------------------------------------------------------------
    def series(self, t: Ticker) -> _Series:
        if t.code not in self.cache:
            rows = self.conn.execute(
                "SELECT id, date, open, high, low, close, volume FROM ohlcv_data"
                " WHERE ticker = ? AND region = ? AND timeframe = 'D' ORDER BY date",
                (t.code, t.region)).fetchall()
            self.cache[t.code] = _Series(t, *(list(col) for col in zip(*rows, strict=True)))
        return self.cache[t.code]

    def pick(self, rejected: bool, fits: _Fits | None = None) -> tuple[_Series, int]:
        """A row of a pool ticker, spaced from the ticker's other planted rows; for a row the loader will
        reject, a Tuesday-Thursday one whose removal keeps the series calm."""
        for _ in range(3 * len(self.pool)):
            s = self.series(self.pool[self.cursor % len(self.pool)])
            self.cursor += 1
            candidates = [i for i in range(1, len(s.ids) - 1)
                          if all(abs(i - j) >= _MIN_SPACING for j in s.used)
                          and (fits is None or fits(s, i))
                          and (not rejected or _weekday(s.dates[i]) in (1, 2, 3))]
            self.rng.shuffle(candidates)
            for i in candidates[:25]:
                if rejected and not s.calm_without(s.rejected | {i}):
                    continue
                s.used.add(i)
                if rejected:
                    s.rejected.add(i)
                return s, i
        raise RuntimeError("no row left to plant a defect on; use a larger sample")

    # -- writing -------------------------------------------------------------------------------------
    def record(self, kind: str, table: str, rowid: int, ticker: object, region: str | None, column: str,
               value: object, **extra: object) -> None:
        entry: Entry = {"kind": kind, "table": table, "rowid": rowid, "ticker": manifest_value(ticker),
                        "region": region, "column": column, "value": manifest_value(value)}
        entry.update(extra)
        self.planted.append(entry)

    def set_row(self, s: _Series, i: int, kind: str, values: dict[str, object], **expect: object) -> None:
        assignments = ", ".join(f"{col} = {placeholder(v)}" for col, v in values.items())
        self.conn.execute(f"UPDATE ohlcv_data SET {assignments} WHERE id = ?", (*values.values(), s.ids[i]))
        column, value = next(iter(values.items()))
        extra = {"values": {c: manifest_value(v) for c, v in values.items()}} if len(values) > 1 else {}
        self.record(kind, "ohlcv_data", s.ids[i], s.ticker.code, s.ticker.region, column, value,
                    date=s.dates[i], **extra, **expect)

    def copy_row(self, rowid: int, overrides: dict[str, object]) -> int:
        columns = ", ".join(_OHLCV_COLUMNS)
        select = ", ".join("?" if col in overrides else col for col in _OHLCV_COLUMNS)
        params = [overrides[col] for col in _OHLCV_COLUMNS if col in overrides]
        cur = self.conn.execute(
            f"INSERT INTO ohlcv_data ({columns}) SELECT {select} FROM ohlcv_data WHERE id = ?",
            (*params, rowid))
        return int(cur.lastrowid)

    # -- the kinds -----------------------------------------------------------------------------------
    def null_region(self) -> None:
        for _ in range(self.k):
            s, i = self.pick(rejected=False)
            self.set_row(s, i, "null_region", {"region": None}, expect="map",
                         mapped={"region": s.ticker.region})

    def timeframe_1d(self) -> None:
        for _ in range(self.k):
            s, i = self.pick(rejected=False)
            self.set_row(s, i, "timeframe_1d", {"timeframe": "1d"}, expect="map", mapped={"timeframe": "D"})

    def duplicate_spelling(self) -> None:
        for n in range(self.k + 2):
            s, i = self.pick(rejected=False)
            column, value = ("timeframe", "1d") if n < self.k else ("region", None)
            rowid = self.copy_row(s.ids[i], {column: value})
            self.record("duplicate_spelling", "ohlcv_data", rowid, s.ticker.code, s.ticker.region, column,
                        value, date=s.dates[i], kept_rowid=s.ids[i], **reject("duplicate_key:key"))

    def malformed_date(self) -> None:
        def swappable(s: _Series, i: int) -> bool:
            """Day <= 12 and unlike the month: 'DD-MM-YYYY' then reads as another valid date."""
            day, month = s.dates[i][8:], s.dates[i][5:7]
            return int(day) <= 12 and day != month

        formats: tuple[tuple[Callable[[str], str], _Fits | None], ...] = (
            (lambda d: d.replace("-", "/"), None),
            (lambda d: d.replace("-", ""), None),
            (lambda d: f"{d[8:]}-{d[5:7]}-{d[:4]}", swappable),
            (lambda d: f"{d[:4]}-02-30", None),
            (lambda d: f"{d} 00:00:00", None),
        )
        for spell, fits in formats:
            s, i = self.pick(rejected=True, fits=fits)
            self.set_row(s, i, "malformed_date", {"date": spell(s.dates[i])}, **reject("malformed_date:date"))
        t = self.pool[self.rng.randrange(len(self.pool))]
        rowid, day = self.rng.choice(self.conn.execute(
            "SELECT id, analysis_date FROM technical_analysis WHERE ticker = ? ORDER BY id",
            (t.code,)).fetchall())
        value = f"{day[8:]}/{day[5:7]}/{day[:4]}"
        self.conn.execute("UPDATE technical_analysis SET analysis_date = ? WHERE id = ?", (value, rowid))
        self.record("malformed_date", "technical_analysis", rowid, t.code, t.region, "analysis_date", value,
                    date=day, **reject("malformed_date:analysis_date"))
        self.ta_used = rowid

    def non_numeric(self) -> None:
        variants: tuple[tuple[str, Callable[[_Series, int], object], _Fits | None], ...] = (
            ("close", lambda s, i: "N/A", None),
            ("open", lambda s, i: f"{s.opens[i]:,.1f}" if s.opens[i] >= 1000 else "1,234.5", None),
            ("ma20", lambda s, i: "NaN", lambda s, i: i >= 19),
            ("volume", lambda s, i: f"{s.volumes[i] // 1000}k", None),
            ("low", lambda s, i: "-", None),
            ("rsi_14", lambda s, i: "NaN", lambda s, i: i >= 14),
        )
        for column, value, fits in variants[:max(4, self.k)]:
            s, i = self.pick(rejected=True, fits=fits)
            self.set_row(s, i, "non_numeric", {column: value(s, i)}, **reject(f"non_numeric:{_OHLCV_TARGET[column]}"))

    def ohlc_violation(self) -> None:
        for n in range(self.k):
            s, i = self.pick(rejected=True, fits=lambda s, i: s.highs[i] > s.lows[i])
            if n < self.k - 1:
                values: dict[str, object] = {"high": s.lows[i], "low": s.highs[i]}
                rule = "chk_ohlcv_high_low"
            else:
                decimals = self.market.decimals[s.ticker.code]
                close = round_price(s.highs[i] * 1.02, decimals)
                values = {"close": close if close > s.highs[i] else s.highs[i] + 10.0 ** -decimals}
                rule = "chk_ohlcv_high_close"
            self.set_row(s, i, "ohlc_violation", values, **reject(f"ohlc_violation:{rule}"))

    def orphan(self) -> None:
        regions = [spec.code for spec in REGIONS]
        codes = [fresh_codes(self.rng, self.rng.choice(regions), 1, self.taken)[0] for _ in range(self.k)]
        last = self.market.days[-1]
        for code in codes:
            sector, sector_code, industries = self.rng.choice(SECTORS)
            industry, industry_code = industries[0]
            stamp = iso_stamp(self.rng, last, 19)
            cur = self.conn.execute(
                "INSERT INTO stock_details (ticker, sector, sector_code, industry, industry_code, is_spac,"
                " is_preferred, par_value, region, created_at, last_updated, enriched_at)"
                " VALUES (?, ?, ?, ?, ?, 0, 0, NULL, NULL, ?, ?, NULL)",
                (code, sector, sector_code, industry, industry_code, stamp, stamp))
            self.record("orphan", "stock_details", int(cur.lastrowid), code, None, "ticker", code,
                        **reject("orphan:ticker not in tickers"))

        etf_code, day, rank = self.rng.choice(self.conn.execute(
            "SELECT etf_ticker, MAX(as_of_date), COUNT(*) + 1 FROM etf_holdings"
            " GROUP BY etf_ticker ORDER BY etf_ticker").fetchall())
        code = codes[0]
        stamp = iso_stamp(self.rng, date.fromisoformat(day), 20)
        cur = self.conn.execute(
            "INSERT INTO etf_holdings (etf_ticker, stock_ticker, weight, shares, market_value, rank_in_etf,"
            " weight_change_from_prev, as_of_date, created_at, data_source)"
            " VALUES (?, ?, 0.4, 100, 1000.0, ?, NULL, ?, ?, 'ETFCheck')", (etf_code, code, rank, day, stamp))
        self.record("orphan", "etf_holdings", int(cur.lastrowid), code, None, "stock_ticker", code,
                    etf_ticker=etf_code, **reject("orphan:stock_ticker not in the target's tickers"))

        # A delisted ticker's last few bars: valid rows whose ticker has left `tickers`.
        region = region_of_code(code)
        price = REGION_BY_CODE[region].price_range[0] * 3.0
        decimals = price_decimals(region, price)
        nulls = ", ".join(["NULL"] * len(_INDICATOR_COLUMNS))
        for day in self.market.dates[-3:]:
            bar = [round_price(price * f, decimals) for f in (1.0, 1.01, 0.98, 0.995)]
            cur = self.conn.execute(
                f"INSERT INTO ohlcv_data ({', '.join(_OHLCV_COLUMNS)})"
                f" VALUES (?, 'D', ?, ?, ?, ?, ?, ?, ?, {nulls}, ?)",
                (code, day, region, *bar, self.rng.randrange(1000, 9000),
                 iso_stamp(self.rng, date.fromisoformat(day), 18)))
            self.record("orphan", "ohlcv_data", int(cur.lastrowid), code, None, "ticker", code, date=day,
                        **reject("orphan:ticker not in tickers"))
            price = bar[3]

    def malformed_timestamp(self) -> None:
        trades = self.conn.execute("SELECT id, ticker, region, order_time FROM trades ORDER BY id").fetchall()
        analyses = self.conn.execute(
            "SELECT ta.id, ta.ticker, t.region FROM technical_analysis ta JOIN tickers t USING (ticker)"
            " WHERE ta.id != ? ORDER BY ta.id", (self.ta_used,)).fetchall()
        trade_picks = self.rng.sample(trades, min(len(trades), (self.k + 1) // 2))
        ta_picks = self.rng.sample(analyses, self.k - len(trade_picks))
        for rowid, ticker, region, order_time in trade_picks:
            value = f"{order_time[8:10]}/{order_time[5:7]}/{order_time[:4]} {order_time[11:16]}"
            self.conn.execute("UPDATE trades SET order_time = ? WHERE id = ?", (value, rowid))
            self.record("malformed_timestamp", "trades", rowid, ticker, region, "order_time", value,
                        **reject("malformed_timestamp:order_time"))
        for rowid, ticker, region in ta_picks:
            self.conn.execute("UPDATE technical_analysis SET created_at = 'yesterday' WHERE id = ?", (rowid,))
            self.record("malformed_timestamp", "technical_analysis", rowid, ticker, region, "created_at",
                        "yesterday", **reject("malformed_timestamp:created_at"))

    def gap(self) -> None:
        # (weekday of the first deleted day, days deleted): a Monday leaves Fri->Tue (4 calendar days),
        # Mon-Wed Fri->Thu (6), a Friday Thu->Mon (4), Thu-Fri Wed->Mon (5).
        shapes = ((0, 1), (0, 3), (4, 1), (3, 2))
        for n, t in enumerate(self.gapped):
            s = self.series(t)
            weekday, length = shapes[n % len(shapes)]
            starts = [i for i in range(5, len(s.ids) - length - 5) if _weekday(s.dates[i]) == weekday]
            self.rng.shuffle(starts)
            start = next((i for i in starts if s.calm_without(set(range(i, i + length)))), None)
            if start is None:
                raise RuntimeError(f"no calm place for a gap in {t.code}; use a larger sample")
            gone = list(range(start, start + length))
            self.conn.executemany("DELETE FROM ohlcv_data WHERE id = ?", [(s.ids[i],) for i in gone])
            prev_date, next_date = s.dates[start - 1], s.dates[start + length]
            self.planted.append({
                "kind": "gap", "table": "ohlcv_data", "ticker": t.code, "region": t.region,
                "prev_date": prev_date, "next_date": next_date,
                "gap_days": (date.fromisoformat(next_date) - date.fromisoformat(prev_date)).days,
                "deleted_rowids": [s.ids[i] for i in gone], "deleted_dates": [s.dates[i] for i in gone],
                "expect": "load",
            })

    def shift_prices(self, s: _Series, start: int, factor: float, decimals: int) -> list[list[float]]:
        """The series' opens, highs, lows and closes, those from `start` on times `factor`: on the tick grid, or
        (full-precision shape) as computed, each bar still bounded."""
        cols = (s.opens, s.highs, s.lows, s.closes)
        if not self.market.full_precision:
            return [[round_price(p * factor, decimals) if i >= start else p for i, p in enumerate(col)]
                    for col in cols]
        bars = [full_bar(*(col[i] * factor for col in cols)) if i >= start else tuple(col[i] for col in cols)
                for i in range(len(s.ids))]
        return [list(col) for col in zip(*bars, strict=True)]

    def extreme_return(self) -> None:
        for n, t in enumerate(self.extreme):
            s = self.series(t)
            factor = (1.6, 0.5)[n % 2]
            decimals = self.market.decimals[t.code]
            margin = max(2, len(s.ids) // 4)
            starts = list(range(margin, len(s.ids) - margin))
            self.rng.shuffle(starts)
            for start in starts:
                shifted = self.shift_prices(s, start, factor, decimals)
                closes = shifted[3]
                # Windows holding the jump are dominated by it; every other window must stay calm.
                if (series_calm(closes[:start], s.volumes[:start])
                        and series_calm(closes[start:], s.volumes[start:])):
                    break
            else:
                raise RuntimeError(f"no calm level shift for {t.code}")
            indicators = self.market.shaped_indicators(indicator_columns(shifted[1], shifted[2], closes, s.volumes))
            sets = ", ".join(f"{col} = ?" for col in (*_PRICE_COLUMNS, *_INDICATOR_COLUMNS))
            self.conn.executemany(f"UPDATE ohlcv_data SET {sets} WHERE id = ?", [
                (*(col[i] for col in shifted), *(col[i] for col in indicators), s.ids[i])
                for i in range(start, len(s.ids))])
            self.planted.append({
                "kind": "extreme_return", "table": "ohlcv_data", "rowid": s.ids[start], "ticker": t.code,
                "region": t.region, "date": s.dates[start], "prev_date": s.dates[start - 1], "factor": factor,
                "return": closes[start] / closes[start - 1] - 1.0, "expect": "load",
            })


def plant(conn: sqlite3.Connection, rng: random.Random, market: Market) -> list[Entry]:
    """Plant every kind of defect into the clean sample in `conn`, then a row for each declared rule still
    unbroken; return the manifest entries."""
    planter = Planter(conn, rng, market)
    for kind in KINDS:
        if kind not in declared.KINDS:
            getattr(planter, kind)()
    declared.plant_declared(planter)
    return planter.planted

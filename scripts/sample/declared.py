"""A planted row for every rule of the registry's declaration that the defect kinds left unbroken.

``registry.declared_rules`` lists, per migratable table, every rule a loaded row keeps, in the order the loader
reports a row breaking several. For each rule a source row can break on its own (``unplantable`` lists the
others, and why) one row is planted that breaks it and nothing before it, so it is quarantined under the rule's
label. A rule that is reported as another (a derived column's, a region found through the ticker) is planted
through its cause, its entry saying which rule it ``breaks``.

Where a planted row comes from, so that no clean row changes and every source key stays unique:

* ohlcv_data: a daily bar of a pool ticker changed in place (``Planter.pick``: removing it moves no
  data-quality check);
* tickers: a new listing (a fresh code) holding the bad value;
* the tables keyed by a ticker: a good row copied onto a new listing, a valid ``tickers`` row added for the
  purpose (kind "new_listing", loaded as it is; stock_details on stocks, the ETF tables on ETFs);
* trades: a copy of a fill (a new id); the market-wide tables: a good row copied to a trading day before the
  sample's first.

``POISON`` are the cells that must never abort a table's load, among the type rules' rows.
"""

from __future__ import annotations

import calendar
import math
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from quantdbops.registry import (
    OHLCV_DATA,
    ORPHAN_NOT_LOADED,
    ORPHAN_OTHER_REGION,
    ORPHAN_UNKNOWN,
    TICKERS,
    DeclaredRule,
    RegionRule,
    Table,
    declared_rules,
    migratable_tables,
)
from sample.entries import Entry, RawText, manifest_value, placeholder, reject
from sample.universe import REGIONS, business_days, fresh_codes, listing_name, region_of_code
from sample.unplantable import Unplantable, unplantable

if TYPE_CHECKING:
    from sample.defects import Planter

KINDS: tuple[str, ...] = ("declared_rule", "new_listing")
Row = dict[str, object]
_REGIONS = tuple(spec.code for spec in REGIONS)
BAD_REGION = "ASIA"  # a market label of global_market_indices, no Spock region

# (table, target column) -> the bad value of that column's type rule: cells the loader must quarantine one by
# one, never failing the table's COPY.
POISON: dict[tuple[str, str], Callable[[object], object]] = {
    ("ohlcv_data", "volume_ratio"): lambda v: math.inf,  # the volume over a 20-day mean of 0
    ("ohlcv_data", "macd_hist"): lambda v: -math.inf,
    ("tickers", "name"): lambda v: f"{v}\0",  # a C string's terminator kept
    ("tickers", "name_eng"): lambda v: RawText(f"{v} Soci\xe9t\xe9".encode("latin-1", "replace")),  # Latin-1
    ("tickers", "exchange"): lambda v: str(v).encode(),  # bytes bound as they are: a blob
    ("tickers", "lot_size"): lambda v: 2**31,  # one past PostgreSQL's integer
    ("etf_details", "aum"): lambda v: float(v) + 0.5 if isinstance(v, int) else 1.5,  # a REAL in a BIGINT
}


def _shift(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def _swap(a: str, b: str) -> Callable[[Row, float], Row]:
    return lambda r, tick: {a: r[b], b: r[a]}


# Rule name -> the change breaking it (source columns), given a good row and its price tick. Each keeps every
# rule declared before it; the ohlcv ones keep the prices positive.
RULE_BREAKS: dict[str, Callable[[Row, float], Row]] = {
    "chk_ohlcv_timeframe": lambda r, tick: {"timeframe": "1h"},
    "chk_ohlcv_prices": lambda r, tick: {"low": 0.0},
    "chk_ohlcv_high_low": _swap("high", "low"),
    "chk_ohlcv_high_open": lambda r, tick: {"open": r["high"] + tick},  # type: ignore[operator]
    "chk_ohlcv_high_close": lambda r, tick: {"close": r["high"] + tick},  # type: ignore[operator]
    "chk_ohlcv_low_open": lambda r, tick: {"open": r["low"] - tick},  # type: ignore[operator]
    "chk_ohlcv_low_close": lambda r, tick: {"close": r["low"] - tick},  # type: ignore[operator]
    "chk_ohlcv_volume": lambda r, tick: {"volume": -r["volume"]},  # type: ignore[operator]
    "chk_etf_details_expense_ratio": lambda r, tick: {"expense_ratio": -0.05},
    "chk_etf_holdings_weight": lambda r, tick: {"weight": -r["weight"]},  # type: ignore[operator]
    "chk_technical_analysis_signal": lambda r, tick: {"signal": "HOLD"},
    "chk_trades_quantity": lambda r, tick: {"quantity": 0},
    "chk_trades_price": lambda r, tick: {"price": 0.0},
    "chk_trades_type": lambda r, tick: {"side": "buy"},
    "chk_portfolio_quantity": lambda r, tick: {"quantity": 0},  # a closed position left behind
    "chk_portfolio_avg_buy_price": lambda r, tick: {"avg_price": 0.0},
    "chk_ticker_fundamentals_period": lambda r, tick: {"period_type": "MONTHLY"},
    "chk_exchange_rate_positive": lambda r, tick: {"rate": 0.0},
    "chk_global_indices_prices": lambda r, tick: {"low_price": 0.0},
    "chk_global_indices_high_low": _swap("high_price", "low_price"),
}
# Rows these ohlcv rules are planted on: a bar that can swap, or whose low leaves room below it.
_OHLCV_FITS: dict[str, Callable[[float, float, float], bool]] = {
    "chk_ohlcv_high_low": lambda high, low, tick: high > low,
    "chk_ohlcv_low_open": lambda high, low, tick: low > 2 * tick,
    "chk_ohlcv_low_close": lambda high, low, tick: low > 2 * tick,
}
# The asset type of the new listing a table's rows are planted on (others take any).
_HOST_ASSET = {"stock_details": "STOCK", "etf_details": "ETF", "etf_holdings": "ETF"}


def _region_rule(rule: DeclaredRule) -> bool:
    return rule.rule is not None and rule.rule.expr.startswith("region IN ")


def _malformed_date(day: str, n: int) -> str:
    y, m, d = day[:4], day[5:7], day[8:10]
    return (f"{y}/{m}/{d}", f"{y}{m}{d}", f"{d}-{m}-{y}", f"{y}-02-30", f"{day} 00:00:00")[n % 5]


def _malformed_timestamp(stamp: str, n: int) -> str:
    y, m, d, hm = stamp[:4], stamp[5:7], stamp[8:10], stamp[11:16]
    epoch = calendar.timegm(datetime.fromisoformat(stamp).timetuple())  # seconds since 1970, as time() gave them
    return ("yesterday", f"{d}/{m}/{y} {hm}", f"{stamp[:10]} 24:00:00", str(epoch))[n % 4]


class _DeclaredPlanter:
    """Plants the declared rules' rows on top of the kinds' (``Planter`` holds the shared state)."""

    def __init__(self, p: Planter) -> None:
        self.p = p
        self.hosts: list[tuple[str, str, str]] = []  # (code, region, asset type) of the new listings
        self.hosted: dict[str, set[str]] = {}  # table -> host codes it has a row on
        self.bad_region: dict[str, str] = {}  # rule kind ('type' / 'rule') -> a planted ticker with that region
        self.unloaded: tuple[str, str] | None = None  # a planted (so not loaded) ticker whose region is good
        self.turn: Counter = Counter()
        self.before = business_days(p.market.days[0] - timedelta(days=1), 250)[::-1]

    # -- reading and writing rows ----------------------------------------------------------------------
    def planted_rowids(self, table: str) -> list[object]:
        return [e["rowid"] for e in self.p.planted if e["table"] == table and "rowid" in e]

    def template(self, t: Table, where: str = "", params: tuple = ()) -> Row:
        """A good row of ``t`` with the fewest NULLs (so each column has a value to spoil), never a planted one."""
        source = t.source or t.name
        names = [r[1] for r in self.p.conn.execute(f'PRAGMA table_info("{source}")')]
        nulls = " + ".join(f'("{n}" IS NULL)' for n in names)
        skip = self.planted_rowids(t.name)
        conds = [f"rowid NOT IN ({', '.join('?' * len(skip))})"] + ([where] if where else [])
        cur = self.p.conn.execute(f'SELECT * FROM "{source}" WHERE {" AND ".join(conds)} ORDER BY {nulls}, rowid '
                                  "LIMIT 1", (*skip, *params))
        row = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
        row.pop("id", None)  # the rowid: a new one is given
        return row

    def insert(self, source: str, row: Row) -> int:
        cols = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join(placeholder(v) for v in row.values())
        return int(self.p.conn.execute(f'INSERT INTO "{source}" ({cols}) VALUES ({marks})',
                                       tuple(row.values())).lastrowid)

    def region_of(self, ticker: object) -> str | None:
        found = self.p.conn.execute("SELECT region FROM tickers WHERE ticker = ?", (ticker,)).fetchone()
        return found[0] if found and found[0] in _REGIONS else None

    # -- the rows a planted row starts from ------------------------------------------------------------
    def new_listing(self, asset_type: str) -> Row:
        """A good tickers row of a fresh code, the regions in turn (not inserted)."""
        region = _REGIONS[self.turn["listing"] % len(_REGIONS)]
        self.turn["listing"] += 1
        row = self.template(TICKERS, "region = ? AND asset_type = ?", (region, asset_type))
        row["ticker"] = fresh_codes(self.p.rng, region, 1, self.p.taken)[0]
        row["name"], row["name_eng"] = listing_name(self.p.rng, region, asset_type)
        return row

    def host(self, table: str) -> tuple[str, str]:
        """(code, region) of a new listing ``table`` has no row of yet; one more is listed when none is left."""
        want = _HOST_ASSET.get(table)
        used = self.hosted.setdefault(table, set())
        found = next(((c, r) for c, r, a in self.hosts if c not in used and want in (None, a)), None)
        if found is None:
            asset_type = want or "STOCK"
            row = self.new_listing(asset_type)
            found = str(row["ticker"]), str(row["region"])
            rowid = self.insert("tickers", row)
            self.p.planted.append({"kind": "new_listing", "table": "tickers", "rowid": rowid, "ticker": found[0],
                                   "region": found[1], "asset_type": asset_type, "expect": "load"})
            self.hosts.append((*found, asset_type))
        used.add(found[0])
        return found

    def base(self, t: Table, hosted: bool = True) -> Row:
        """A good row of ``t`` with a key no other row has (see the module docstring)."""
        if t.name == "tickers":
            return self.new_listing("STOCK")
        row = self.template(t)
        if t.ticker_column and t.ticker_column in t.key and hosted:
            code, region = self.host(t.name)
            row[t.ticker_column] = code
            if "region" in row:
                row["region"] = region
        elif not t.has_region and t.time_column:  # market-wide: the key is the day
            column = t.column(t.time_column).source_column or ""
            day = self.before[self.turn[t.name]]
            self.turn[t.name] += 1
            delta = (day - date.fromisoformat(str(row[column]))).days
            for c, v in row.items():  # the row's stamps move with its day
                if isinstance(v, str) and len(v) >= 10 and v[4] == "-" and v[:4].isdigit():
                    row[c] = _shift(v[:10], delta) + v[10:]
        return row

    # -- breaking a rule -------------------------------------------------------------------------------
    def bad_value(self, kind: str, value: object) -> object:
        """A value a column of ``kind`` must not hold, made from its good ``value`` (the spellings rotate)."""
        n = self.turn[kind]
        self.turn[kind] += 1
        if kind == "text":
            return f"{value if isinstance(value, str) else 'n/a'}\0"
        if kind == "date":
            return _malformed_date(str(value) if value else self.p.market.dates[-1], n)
        if kind == "timestamptz":
            return _malformed_timestamp(str(value) if value else f"{self.p.market.dates[-1]}T18:00:00", n)
        if kind in ("int", "bigint"):
            return ("N/A", value + 0.5 if isinstance(value, int) else 12.5)[n % 2]
        if kind == "bool":
            return ("Y", 2, "true")[n % 3]
        return ("N/A", "-", "1,234.5", "")[n % 4]

    def breakable(self, t: Table, rule: DeclaredRule) -> bool:
        """Whether ``breaking`` knows a change breaking ``rule`` (a key repeats only through the duplicate_spelling
        kind; 'not in the target's tickers' needs a planted tickers row with a good region)."""
        if rule.kind == "rule":
            return _region_rule(rule) or (rule.rule is not None and rule.rule.name in RULE_BREAKS)
        if rule.kind == "orphan":
            unloaded = {ORPHAN_NOT_LOADED.format(c) for c in (t.ticker_column, *t.ticker_refs)}
            return rule.detail not in unloaded or self.unloaded is not None
        return rule.kind in ("required", "type")

    def breaking(self, t: Table, rule: DeclaredRule, row: Row, tick: float = 0.01) -> Row:
        """The change of ``row`` that breaks ``rule`` first (``breakable`` says there is one)."""
        if rule.kind in ("required", "type"):
            col = t.column(rule.column or "")
            source = col.source_column or ""
            if rule.kind == "required":
                return {source: None}
            poison = POISON.get((t.name, col.name))
            return {source: poison(row[source]) if poison else self.bad_value(col.kind, row[source])}
        if rule.kind == "rule" and _region_rule(rule):
            return {"region": BAD_REGION}
        if rule.kind == "rule":
            return RULE_BREAKS[rule.rule.name](row, tick)  # type: ignore[union-attr]
        return self.orphan(t, rule, row)

    def orphan(self, t: Table, rule: DeclaredRule, row: Row) -> Row:
        tcol = t.ticker_column or ""
        carries_region = t.region_rule in (RegionRule.COLUMN, RegionRule.COLUMN_OR_TICKER)
        if rule.detail == ORPHAN_OTHER_REGION:
            own = self.region_of(row[tcol]) or _REGIONS[0]
            return {"region": _REGIONS[(_REGIONS.index(own) + 1) % len(_REGIONS)]}
        if rule.detail == ORPHAN_UNKNOWN.format(tcol):
            code = fresh_codes(self.p.rng, self.p.rng.choice(_REGIONS), 1, self.p.taken)[0]
            region = region_of_code(code) if t.region_rule is RegionRule.COLUMN else None
            return {tcol: code, **({"region": region} if carries_region else {})}
        code, region = self.unloaded or ("", "")
        column = next(c for c in (tcol, *t.ticker_refs) if rule.detail == ORPHAN_NOT_LOADED.format(c))
        return {column: code, **({"region": region} if carries_region and column == tcol else {})}

    # -- planting --------------------------------------------------------------------------------------
    def plant(self, t: Table, rule: DeclaredRule) -> None:
        if not self.breakable(t, rule):
            return  # not planted: the coverage test names the rule
        replaces_ticker = rule.kind == "orphan" and rule.detail in (
            ORPHAN_UNKNOWN.format(t.ticker_column), ORPHAN_NOT_LOADED.format(t.ticker_column))
        if t.name == OHLCV_DATA.name and not replaces_ticker:
            self.plant_bar(rule)
            return
        row = self.template(t) if t.name == OHLCV_DATA.name else self.base(t, hosted=not replaces_ticker)
        change = self.breaking(t, rule, row)
        row.update(change)
        self.write(t, row, change, rule.label)
        if t.name == "tickers":
            self.remember_ticker(rule, row)

    def write(self, t: Table, row: Row, change: Row, label: str, **extra: object) -> None:
        rowid = self.insert(t.source or t.name, row)
        ticker = row.get(t.ticker_column or "ticker")
        region = row.get("region") if t.name == "tickers" else self.region_of(ticker)
        column, value = next(iter(change.items()))
        more = {"values": {c: manifest_value(v) for c, v in change.items()}} if len(change) > 1 else {}
        self.p.record("declared_rule", t.name, rowid, ticker, region if isinstance(region, str) else None,
                      column, value, **more, **reject(label), **extra)

    def remember_ticker(self, rule: DeclaredRule, row: Row) -> None:
        """A planted tickers row the rows of other tables can point at: a bad region, or a good one."""
        if rule.column == "region" or _region_rule(rule):
            self.bad_region[rule.kind] = str(row["ticker"])
        elif rule.column != "ticker" and row["region"] in _REGIONS:
            self.unloaded = str(row["ticker"]), str(row["region"])

    def plant_bar(self, rule: DeclaredRule) -> None:
        """An ohlcv_data rule: a pool ticker's bar changed in place, its removal moving no quality check."""
        p = self.p
        fits = _OHLCV_FITS.get(rule.rule.name if rule.rule else "")

        def room(s: object, i: int) -> bool:
            tick = 10.0 ** -p.market.decimals[s.ticker.code]  # type: ignore[attr-defined]
            return fits is None or fits(s.highs[i], s.lows[i], tick)  # type: ignore[attr-defined]

        s, i = p.pick(rejected=True, fits=room)
        cur = p.conn.execute("SELECT * FROM ohlcv_data WHERE id = ?", (s.ids[i],))
        row = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
        change = self.breaking(OHLCV_DATA, rule, row, 10.0 ** -p.market.decimals[s.ticker.code])
        p.set_row(s, i, "declared_rule", change, **reject(rule.label))

    def plant_cause(self, t: Table, rule: DeclaredRule, note: Unplantable) -> None:
        """A rule reported as another: a row breaking it through its cause, filed under ``note.reported_as``."""
        if rule.column in t.derived:  # a cause whose date part is malformed: the derived date is too
            cause = t.column(t.derived[rule.column or ""]).source_column or ""
            row = self.base(t)
            stamp = str(row[cause])
            change: Row = {cause: f"{_malformed_date(stamp[:10], 0)}{stamp[10:]}"}
        else:  # the region of the row's ticker
            code = self.bad_region.get("type" if rule.kind == "type" else "rule")
            if code is None or not t.ticker_column:
                return
            row = self.base(t, hosted=False)
            change = {t.ticker_column: code}
        row.update(change)
        self.write(t, row, change, note.reported_as or "", breaks=rule.label)



def plant_declared(p: Planter) -> None:
    """Plant a row for every declared rule of every migratable table that no planted row breaks yet."""
    d = _DeclaredPlanter(p)
    done = {(e["table"], e.get("label")) for e in p.planted}
    for t in migratable_tables():
        notes = {u.label: u for u in unplantable(t)}
        for rule in declared_rules(t):
            note = notes.get(rule.label)
            if note is not None and note.reported_as:
                d.plant_cause(t, rule, note)
            elif note is None and (t.name, rule.label) not in done:
                d.plant(t, rule)


def coverage(planted: list[Entry]) -> list[dict[str, object]]:
    """Every declared rule with the planted rows quarantined under its label or breaking it through their cause
    and, for a rule no row breaks on its own, why (the manifest's ``rules``)."""
    out: list[dict[str, object]] = []
    for t in migratable_tables():
        notes = {u.label: u for u in unplantable(t)}
        for rule in declared_rules(t):
            rowids = [e["rowid"] for e in planted
                      if e["table"] == t.name and rule.label in (e.get("label"), e.get("breaks"))]
            entry: dict[str, object] = {"table": t.name, "label": rule.label, "rowids": rowids}
            if (note := notes.get(rule.label)) is not None:
                entry["why"] = note.why
                if note.reported_as:
                    entry["reported_as"] = note.reported_as
            out.append(entry)
    return out

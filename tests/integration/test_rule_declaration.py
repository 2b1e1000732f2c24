"""The registry's rule declaration, walked rule by rule: for every rule of every migrated table, a source row
breaking it is quarantined with that rule's reason, never reaches the target, and validation passes.

The dirty source is made here, not by the sample generator: a clean sample is copied into a file with the
same column types but none of the source's constraints (no NOT NULL, no key, no UNIQUE: the shape of a
hand-made export, where NULLs and duplicate keys occur), and for each rule one copy of a valid row is
changed so that the rule is the first one it breaks. Which value breaks a table rule is searched for by
evaluating the rules on the changed row in SQLite; a rule no search can break on its own (a new rule of a
new shape) fails the coverage test until this walk learns it.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from quantdbops import REGIONS
from quantdbops.registry import (
    MALFORMED_TIMESTAMP,
    ORPHAN,
    ORPHAN_NOT_LOADED,
    TICKERS,
    DeclaredRule,
    RegionRule,
    Table,
    declared_rules,
)
from quantdbops.schema.apply import apply_schema
from sample import generate
from support.harness import MODES
from support.migration import MIGRATABLE, failures, load, target_counts, validate

SAMPLE = {"tickers_per_region": 2, "days": 45, "seed": 31}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def relaxed_copy(src: Path, dst: Path) -> None:
    """Every table of ``src`` with its declared column types and none of its constraints."""
    with sqlite3.connect(dst) as d:
        d.execute("ATTACH DATABASE ? AS src", (str(src),))
        names = [r[0] for r in d.execute(
            "SELECT name FROM src.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for name in names:
            cols = d.execute(f"PRAGMA src.table_info({_q(name)})").fetchall()
            d.execute(f"CREATE TABLE main.{_q(name)} ({', '.join(f'{_q(c[1])} {c[2]}' for c in cols)})")
            d.execute(f"INSERT INTO main.{_q(name)} SELECT * FROM src.{_q(name)} ORDER BY rowid")
        d.commit()
        d.execute("DETACH DATABASE src")


@dataclass(frozen=True)
class Planted:
    table: str
    rowid: int
    label: str  # the reject the loader must write: reason:detail
    rule: str  # the declared rule this row stands for (its table and label)
    how: str


def _source_column(t: Table, name: str) -> str:
    col = t.column(name)
    return t.derived.get(name) or col.source_column or name


def _rule_columns(t: Table, expr: str) -> list[str]:
    names = set(t.column_names)
    return list(dict.fromkeys(m for m in re.findall(r"\b([a-z_][a-z0-9_]*)\b", expr) if m in names))


class Walk:
    """Plants one row per declared rule into the relaxed copy."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.c = conn
        self.planted: list[Planted] = []
        self.fresh = itertools.count(1)
        self.broken_tickers: dict[tuple[str, str], str] = {}  # (kind of damage, region) -> ticker code

    # --- rows -------------------------------------------------------------------------------------------
    def copy(self, t: Table, where: str = "1") -> int:
        """A new row: a copy of the table's first row matching ``where`` (its key duplicates the original's,
        which ranks last among the reasons, so the row's own defect is what it is quarantined for)."""
        src = self.c.execute(f"SELECT rowid FROM main.{_q(t.source)} WHERE {where} ORDER BY rowid LIMIT 1").fetchone()
        assert src, f"{t.name}: no row matching {where}"
        self.c.execute(f"INSERT INTO main.{_q(t.source)} SELECT * FROM main.{_q(t.source)} WHERE rowid = ?", src)
        return self.c.execute("SELECT last_insert_rowid()").fetchone()[0]

    def set(self, t: Table, rowid: int, column: str, value: object, *, sql_value: str | None = None) -> None:
        expr = sql_value if sql_value is not None else "?"
        params = () if sql_value is not None else (value,)
        self.c.execute(f"UPDATE main.{_q(t.source)} SET {_q(column)} = {expr} WHERE rowid = ?", (*params, rowid))

    def values(self, t: Table, rowid: int) -> dict[str, object]:
        cur = self.c.execute(f"SELECT * FROM main.{_q(t.source)} WHERE rowid = ?", (rowid,))
        return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))

    def add(self, t: Table, rowid: int, label: str, rule: DeclaredRule, how: str) -> None:
        self.planted.append(Planted(t.name, rowid, label, f"{rule.table} {rule.label}", how))

    # --- tickers the target will not have ---------------------------------------------------------------
    def broken_ticker(self, damage: str, region: str) -> str:
        """A new ticker of ``region`` whose only tickers row is quarantined (``damage``: which of its rules
        it breaks); rows naming it are orphans."""
        key = (damage, region)
        if key not in self.broken_tickers:
            code = f"ZZBROKEN{next(self.fresh):03d}"
            rowid = self.copy(TICKERS, f"region = '{region}'")
            self.set(TICKERS, rowid, "ticker", code)
            rules = {r.label: r for r in declared_rules(TICKERS)}
            if damage == "timestamp":
                self.set(TICKERS, rowid, "created_at", "2025-13-40 10:00:00")
                label = f"{MALFORMED_TIMESTAMP}:created_at"
            elif damage == "region_text":
                self.set(TICKERS, rowid, "region", region[0] + "\0" + region[1:])
                label = "invalid_text:region"
            else:  # the region names no region
                self.set(TICKERS, rowid, "region", "ZZ")
                label = "invalid_value:chk_tickers_region"
            self.add(TICKERS, rowid, label, rules[label], f"ticker {code}: {damage}")
            self.broken_tickers[key] = code
        return self.broken_tickers[key]

    def via_broken_ticker(self, t: Table, rule: DeclaredRule, damage: str) -> None:
        """A row naming a ticker the target will not have: quarantined as an orphan."""
        rowid = self.copy(t)
        region = self._region_of(t, rowid)
        self.set(t, rowid, t.ticker_column, self.broken_ticker(damage, region))
        self.add(t, rowid, f"{ORPHAN}:{ORPHAN_NOT_LOADED.format(t.ticker_column)}", rule,
                 f"{t.ticker_column} names a ticker quarantined for {damage}")

    def _region_of(self, t: Table, rowid: int) -> str:
        row = self.values(t, rowid)
        if row.get("region") in REGIONS:
            return row["region"]
        return self.c.execute("SELECT region FROM main.tickers WHERE ticker = ?",
                              (row[t.ticker_column],)).fetchone()[0]

    # --- one rule --------------------------------------------------------------------------------------
    def plant(self, t: Table, rule: DeclaredRule, index: int) -> None:
        column = t.column(rule.column) if rule.column else None
        if column is not None and column.name in t.derived:
            # A derived column (trades.trade_date from order_time) breaks only with its source column, whose
            # own rule comes first in the report order.
            source = t.derived[column.name]
            rowid = self.copy(t)
            if rule.kind == "required":
                self.set(t, rowid, source, None)
                label = f"missing_required:{source}"
            else:
                self.set(t, rowid, source, "2025/01/02 10:00:00")
                label = f"{MALFORMED_TIMESTAMP}:{source}"
            self.add(t, rowid, label, rule, f"{source} broken ({column.name} is derived from it)")
            return
        if column is not None and column.name == "region" and t.region_rule is RegionRule.TICKER:
            # The region is the ticker's: it breaks only through a ticker, which is quarantined itself.
            self.via_broken_ticker(t, rule, "region_text" if rule.kind == "type" else "region")
            return
        if rule.kind == "rule" and "region" in _rule_columns(t, rule.rule.expr) \
                and t.region_rule is RegionRule.TICKER:
            self.via_broken_ticker(t, rule, "region")
            return
        getattr(self, f"_{rule.kind}")(t, rule, index)

    def _required(self, t: Table, rule: DeclaredRule, index: int) -> None:
        rowid = self.copy(t)
        self.set(t, rowid, _source_column(t, rule.column), None)
        self.add(t, rowid, rule.label, rule, f"{rule.column} NULL")

    def _type(self, t: Table, rule: DeclaredRule, index: int) -> None:
        col = t.column(rule.column)
        source = _source_column(t, col.name)
        rowid = self.copy(t)
        kind, sql_value, value = col.kind, None, None
        if kind == "date":
            value, how = "2025/01/02", "a date spelled 2025/01/02"
        elif kind == "timestamptz":
            value, how = "2025-01-02 24:00:00", "a timestamp at 24:00:00"
        elif kind == "numeric":
            value, how = [float("inf"), float("-inf"), "12,5"][index % 3], "infinity, -infinity or text"
        elif kind == "int":
            value, how = 2**31, "2**31 in an integer column"
        elif kind == "bigint":
            value, how = 1.5, "1.5 in a bigint column"
        elif kind == "bool":
            value, how = 2, "2 in a boolean column"
        else:  # text: a NUL byte, invalid UTF-8, a blob (cycled over the text columns)
            variant = index % 3
            current = str(self.values(t, rowid)[source] or "ab")
            if variant == 0 or col.name == "region":
                value, how = f"{current[:1]}\0{current[1:]}", "a NUL byte"
            elif variant == 1:
                sql_value, how = "CAST(x'41ff42' AS TEXT)", "invalid UTF-8"
            else:
                value, how = b"\x01\x02", "a blob"
        self.set(t, rowid, source, value, sql_value=sql_value)
        self.add(t, rowid, rule.label, rule, f"{rule.column}: {how}")

    def _rule(self, t: Table, rule: DeclaredRule, index: int) -> None:
        columns = _rule_columns(t, rule.rule.expr)
        rowid = self.copy(t, " AND ".join(f"{_q(_source_column(t, c))} IS NOT NULL" for c in columns))
        stored = self.values(t, rowid)
        row = {c.name: stored.get(_source_column(t, c.name)) for c in t.loaded_columns}
        earlier = [r.rule for r in declared_rules(t) if r.kind == "rule"]
        earlier = earlier[:earlier.index(rule.rule)]
        for column, value in self._candidates(row, columns, rule):
            changed = {**row, column: value}
            if not _holds(rule.rule.expr, changed) and all(_holds(r.expr, changed) is not False for r in earlier):
                self.set(t, rowid, _source_column(t, column), value)
                self.add(t, rowid, rule.label, rule, f"{column} := {value!r}")
                return
        raise AssertionError(f"{t.name}: no single-column change breaks {rule.label} first; teach the walk")

    @staticmethod
    def _candidates(row: dict, columns: list[str], rule: DeclaredRule) -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = []
        if " IN (" in rule.rule.expr:
            return [(columns[0], "ZZ")]
        for c in columns:
            v = row[c]
            if not isinstance(v, (int, float)):
                continue
            others = [row[o] for o in columns if o != c and isinstance(row[o], (int, float))]
            raw = [0, -abs(v) or -1, v * 2, v / 2, *(o * 2 for o in others), *(o / 2 for o in others)]
            out += [(c, int(x) if isinstance(v, int) else x) for x in raw]
        return out

    def _orphan(self, t: Table, rule: DeclaredRule, index: int) -> None:
        if rule.detail == ORPHAN_NOT_LOADED.format(t.ticker_column):
            self.via_broken_ticker(t, rule, "timestamp")
            return
        rowid = self.copy(t)
        if rule.detail.startswith(f"{t.ticker_column} not in tickers"):
            self.set(t, rowid, t.ticker_column, f"ZZNOPE{next(self.fresh):03d}")
            how = f"{t.ticker_column} names no ticker of the source"
        elif rule.detail.startswith("region differs"):
            own = self._region_of(t, rowid)
            self.set(t, rowid, "region", next(r for r in REGIONS if r != own))
            how = "the row's region is another region than its ticker's"
        else:  # a referenced ticker (etf_holdings.stock_ticker) the target does not have
            ref = rule.detail.split(" ")[0]
            self.set(t, rowid, ref, f"ZZNOPE{next(self.fresh):03d}")
            how = f"{ref} names no ticker"
        self.add(t, rowid, rule.label, rule, how)

    def _key(self, t: Table, rule: DeclaredRule, index: int) -> None:
        rowid = self.copy(t)
        self.add(t, rowid, rule.label, rule, "an exact copy of another row")


def _holds(expr: str, values: dict) -> bool | None:
    """A rule over one row, evaluated by SQLite (NULL: passes, as a CHECK)."""
    names = {m for m in re.findall(r"\b([a-z_][a-z0-9_]*)\b", expr) if m in values}
    bound = re.sub(r"\b([a-z_][a-z0-9_]*)\b", lambda m: f":{m.group(1)}" if m.group(1) in names else m.group(1), expr)
    result = sqlite3.connect(":memory:").execute(f"SELECT ({bound})", {n: values[n] for n in names}).fetchone()[0]
    return None if result is None else bool(result)


def plant_every_rule(path: Path) -> list[Planted]:
    with sqlite3.connect(path) as conn:
        walk = Walk(conn)
        for t in MIGRATABLE:
            for index, rule in enumerate(declared_rules(t)):
                walk.plant(t, rule, index)
        conn.commit()
    return walk.planted


@pytest.fixture(name="dirty")
def dirty_fixture(tmp_path: Path) -> tuple[Path, list[Planted]]:
    clean = tmp_path / "clean.db"
    generate(clean, **SAMPLE)
    path = tmp_path / "relaxed.db"
    relaxed_copy(clean, path)
    return path, plant_every_rule(path)


def _label(reason: str, detail: str) -> str:
    """The declared label of a reject row (its detail may add a note: 'name: a NUL byte', the kept rowid)."""
    if reason == "duplicate_key":
        return "duplicate_key:key"
    return f"{reason}:{detail.split(': ', maxsplit=1)[0] if reason == 'invalid_text' else detail}"


def _source_rows(path: Path, t: Table) -> int:
    with sqlite3.connect(path) as s:
        return s.execute(f"SELECT count(*) FROM main.{_q(t.source)}").fetchone()[0]


def test_every_declared_rule_is_planted(dirty: tuple[Path, list[Planted]]) -> None:
    """The walk covers the whole declaration: a rule added to the registry is planted or this fails."""
    _, planted = dirty
    declared = {f"{t.name} {r.label}" for t in MIGRATABLE for r in declared_rules(t)}
    assert {p.rule for p in planted} == declared
    assert len(declared) > 150  # every table's columns, rules, tickers and keys


@pytest.mark.parametrize("mode", MODES)
def test_a_row_breaking_any_rule_is_quarantined_with_its_reason(
        mode: str, dirty: tuple[Path, list[Planted]], pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    path, planted = dirty
    apply_schema(pg_conn)
    # The dry run predicts the same quarantine, through PostgreSQL's own input functions.
    dry = load(path, pg_dsn, dry_run=True, run_id="walk-dry")
    assert sum(sum(r.rejected.values()) for r in dry.values()) == len(planted)
    assert pg_conn.execute("SELECT count(*) FROM ops.migration_rejects").fetchone()[0] == 0

    results = load(path, pg_dsn, run_id="walk")
    expected = Counter((p.table, p.rowid, p.label) for p in planted)
    got = Counter((t, rowid, _label(reason, detail)) for t, rowid, reason, detail in pg_conn.execute(
        "SELECT table_name, source_rowid, reason, detail FROM ops.migration_rejects"))
    assert got == expected, sorted(set(got) ^ set(expected))
    for r in dry.values():
        assert r.rejected == results[r.table].rejected, r.table

    # None of them reached the target: what the target holds is what the source holds minus the planted rows.
    by_table = Counter(p.table for p in planted)
    for t in MIGRATABLE:
        held = sum(target_counts(pg_conn, t).values())
        assert held == _source_rows(path, t) - by_table[t.name], t.name
    assert failures(validate(path, pg_dsn)) == []

"""The declared rules no source row can break on its own, and why (the rest the generator plants).

The generator writes files of the source contract, whose constraints hold: a NOT NULL column never holds
NULL, a UNIQUE key never repeats, an INTEGER PRIMARY KEY holds only integers. A declared rule those
constraints already keep cannot be broken in such a file. Two more cannot be broken without breaking an
earlier rule first, so the loader reports a row breaking them by that earlier rule:

* the rules of a derived column (``trades.trade_date`` is the date of ``order_time``): a bad ``order_time``
  is reported as itself;
* the region rules of a table whose region is its ticker's (``RegionRule.TICKER``): only a ticker whose own
  ``tickers`` row has a bad region breaks them, and that row is not loaded, so the loader reports
  ``orphan:<column> not in the target's tickers``.

Each is listed with ``why``; ``reported_as`` names the label the loader files a row breaking it through its
cause under, where such a row can be planted (the generator then plants one).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import cache

from quantdbops.registry import (
    KIND_REASONS,
    MISSING_REQUIRED,
    ORPHAN,
    ORPHAN_NOT_LOADED,
    DeclaredRule,
    RegionRule,
    Table,
    declared_rules,
    migratable_tables,
)
from sample.source_ddl import CONTRACT_DDL

# Why a rule has no row of its own: the contract keeps it (a NOT NULL column, the rowid, a unique key), or a
# row breaking it breaks an earlier rule first (a derived column's cause, the region's ticker).
NOT_NULL, ROWID, UNIQUE, DERIVED, TICKER_REGION = "not_null", "rowid", "unique", "derived", "ticker_region"
CAUSES = {
    NOT_NULL: "cannot be broken in a file of the real schema: NOT NULL there",
    ROWID: "cannot be broken in a file of the real schema: the INTEGER PRIMARY KEY holds integers only",
    UNIQUE: "cannot be broken in a file of the real schema: its own unique key keeps the key unique",
    DERIVED: "derived from another column: reported as that column's rule",
    TICKER_REGION: "the region is the ticker's: reported as the ticker's orphan rule",
}


@dataclass(frozen=True)
class Unplantable:
    """A declared rule of ``table`` that no row of a file of the source contract breaks on its own."""

    table: str
    label: str
    cause: str  # one of CAUSES
    why: str
    reported_as: str | None = None  # the label of a row breaking it through its cause, when one can be planted


@dataclass(frozen=True)
class _SourceColumn:
    not_null: bool
    rowid: bool  # the INTEGER PRIMARY KEY: an alias of the rowid, integers only


@cache
def _contract() -> tuple[dict[str, dict[str, _SourceColumn]], dict[str, tuple[tuple[str, ...], ...]]]:
    """Each contract table's columns and unique keys, read from the DDL by SQLite itself."""
    conn = sqlite3.connect(":memory:")
    try:
        columns: dict[str, dict[str, _SourceColumn]] = {}
        uniques: dict[str, tuple[tuple[str, ...], ...]] = {}
        for name, ddl in CONTRACT_DDL.items():
            conn.execute(ddl)
            info = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
            pk = [r[1] for r in info if r[5]]
            rowid = pk[0] if len(pk) == 1 and next(r[2] for r in info if r[1] == pk[0]).upper() == "INTEGER" else None
            columns[name] = {r[1]: _SourceColumn(bool(r[3]) or r[1] == rowid, r[1] == rowid) for r in info}
            keys = [(rowid,)] if rowid else []
            for index in conn.execute(f'PRAGMA index_list("{name}")').fetchall():
                if index[2]:
                    keys.append(tuple(r[2] for r in conn.execute(f'PRAGMA index_info("{index[1]}")')))
            uniques[name] = tuple(keys)
    finally:
        conn.close()
    return columns, uniques


def _source_of(t: Table, column: str) -> str | None:
    return t.column(column).source_column


def _key_why(t: Table) -> str | None:
    """Why no two source rows can map onto one key of ``t``; None when a mapping can make them meet."""
    _, uniques = _contract()
    mapped = {c.source_column for c in t.columns if c.value_map}
    if t.region_rule is RegionRule.COLUMN_OR_TICKER:
        mapped.add("region")  # NULL becomes the ticker's region
    sources = set()
    for name in t.key:
        if name == "region" and t.region_rule is RegionRule.TICKER:
            continue  # follows the ticker
        sources.add(t.derived.get(name) or _source_of(t, name))
    for unique in uniques[t.source or ""]:
        if set(unique) <= sources and not set(unique) & mapped:
            return (f"the source's unique ({', '.join(unique)}) keeps ({', '.join(t.key)}) unique and no mapping "
                    "changes those columns")
    return None


def _region_from_ticker(t: Table, rule: DeclaredRule) -> bool:
    if t.region_rule is not RegionRule.TICKER:
        return False
    if rule.column == "region":
        return True
    return rule.rule is not None and re.match(r"region\b", rule.rule.expr) is not None


def _why(t: Table, rule: DeclaredRule) -> Unplantable | None:
    columns, _ = _contract()
    source = columns[t.source or ""]
    if rule.kind in ("required", "type") and rule.column in t.derived:
        cause = t.column(t.derived[rule.column])
        if rule.kind == "required" and source[cause.source_column or ""].not_null:
            return Unplantable(t.name, rule.label, NOT_NULL,
                               f"{rule.column} is derived from {cause.name}, which the source declares NOT NULL")
        label = f"{MISSING_REQUIRED if rule.kind == 'required' else KIND_REASONS[cause.kind]}:{cause.name}"
        return Unplantable(t.name, rule.label, DERIVED, f"{rule.column} is derived from {cause.name}: a bad "
                           f"{cause.name} is reported as {label}", reported_as=label)
    if _region_from_ticker(t, rule):
        label = f"{ORPHAN}:{ORPHAN_NOT_LOADED.format(t.ticker_column)}"
        return Unplantable(t.name, rule.label, TICKER_REGION, f"the region is the ticker's: only a ticker whose own "
                           f"row has a bad region breaks it, and that ticker is not loaded: reported as {label}",
                           reported_as=label)
    if rule.kind in ("required", "type"):
        name = _source_of(t, rule.column or "") or ""
        col = source.get(name)
        if col is not None and col.rowid:
            return Unplantable(t.name, rule.label, ROWID, f"{t.source}.{name} is the INTEGER PRIMARY KEY (the "
                               "rowid): SQLite holds only integers there, never NULL")
        if rule.kind == "required" and col is not None and col.not_null:
            return Unplantable(t.name, rule.label, NOT_NULL, f"{t.source}.{name} is NOT NULL in the source schema")
    if rule.kind == "key" and (why := _key_why(t)):
        return Unplantable(t.name, rule.label, UNIQUE, why)
    return None


def unplantable(t: Table) -> tuple[Unplantable, ...]:
    """The declared rules of ``t`` that no source row breaks on its own, in declaration order, with why."""
    return tuple(u for r in declared_rules(t) if (u := _why(t, r)) is not None)


def all_unplantable() -> tuple[Unplantable, ...]:
    """``unplantable`` of every migratable table."""
    return tuple(u for t in migratable_tables() for u in unplantable(t))

"""The row rules the quality checks count, generated from the table registry's declaration.

``registry.declared_rules(table)`` lists every rule the loader quarantines a source row for. Over the target
each kind of rule is one check's business, so the loader and the checks cannot disagree about a bad row:

- ``required`` (a required column is NULL): ``null_required``, over every column the registry marks required
  (the target also requires the region the loader finds through a row's ticker);
- ``type`` (a value not of its column's kind): nothing to check, PostgreSQL's column types refuse it;
- ``rule`` (one of ``Table.rules``): ``ohlcv_rules`` for ``ohlcv_data``, ``row_rules`` for every other table;
- ``orphan`` (a ticker, or a ticker in that region, unknown): ``referential``, over
  ``registry.ticker_references()``;
- ``key`` (two rows on one natural key): ``duplicates``, also across spellings (an identity key is unique by
  construction).

Plain data and ``psycopg.sql`` fragments, no I/O. A rule's expression is registry text (never user input),
composed as SQL the way the schema's CHECK constraints are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quantdbops.registry import OHLCV_DATA, TABLES, DeclaredRule, Table, declared_rules, ticker_references

if TYPE_CHECKING:
    from psycopg import sql

# The check counting the target's rows that break a declared rule of each kind (None: nothing can break it).
CHECK_OF_KIND: dict[str, str | None] = {
    "required": "null_required", "type": None, "rule": "row_rules", "orphan": "referential", "key": "duplicates",
}


@dataclass(frozen=True)
class RowRule:
    """One rule as a row check counts it: a name, SQL true for a row breaking it, and that row in words."""

    name: str  # the CHECK constraint's name, or the required column
    broken: sql.Composable  # true for a breaking row; a NULL the rule reads passes, as in a CHECK
    text: str  # what a sample row lists among its broken rules


def required_rules(t: Table) -> tuple[RowRule, ...]:
    """``null_required``: one rule per required column of the table."""
    from psycopg import sql  # only when a check runs: the DAG file imports this module at parse time

    return tuple(RowRule(c, sql.SQL("{} IS NULL").format(sql.Identifier(c)), c) for c in t.required_columns)


def declared_row_rules(t: Table) -> tuple[RowRule, ...]:
    """``ohlcv_rules`` / ``row_rules``: every rule of the table's declaration. ``NOT (expr)`` is true exactly
    for the rows its CHECK constraint refuses (a NULL makes it NULL, not true, as a CHECK lets it pass), and
    in that form the planner can prove from a validated CHECK constraint that no row qualifies."""
    from psycopg import sql

    return tuple(RowRule(r.name, sql.SQL("NOT ({})").format(sql.SQL(r.expr)), r.broken_text) for r in t.rules)


def rule_check_name(t: Table) -> str:
    """The check counting a table's declared rules."""
    return "ohlcv_rules" if t is OHLCV_DATA else "row_rules"


def columns_read(t: Table) -> tuple[str, ...]:
    """The table's columns its rules read, in table order (the sample rows show them beside the key)."""
    words = {w for r in t.rules for w in re.findall(r"[a-z_][a-z0-9_]*", r.expr)}
    return tuple(c for c in t.column_names if c in words)


def natural_key_tables() -> tuple[Table, ...]:
    """Tables with a natural key (not an identity value, which is unique by construction)."""
    def identity(t: Table, name: str) -> bool:
        return t.column(name).kind in ("serial", "bigserial")

    return tuple(t for t in TABLES if not any(identity(t, c) for c in t.key) and t.key != (t.surrogate,))


def required_column_tables() -> tuple[Table, ...]:
    return tuple(t for t in TABLES if t.required_columns)


def rule_tables(check_name: str) -> tuple[Table, ...]:
    return tuple(t for t in TABLES if t.rules and rule_check_name(t) == check_name)


def reference_tables() -> tuple[Table, ...]:
    """Tables with a column naming a ticker of ``tickers``, in registry order."""
    named = {r.table for r in ticker_references()}
    return tuple(t for t in TABLES if t.name in named)


def check_of(rule: DeclaredRule, t: Table) -> str | None:
    """The quality check that counts the target's rows breaking a declared rule of ``t`` (None: no row can)."""
    name = CHECK_OF_KIND[rule.kind]
    if name == "duplicates" and t not in natural_key_tables():
        return None  # an identity key
    return rule_check_name(t) if name == "row_rules" else name


def coverage(t: Table) -> dict[str, str | None]:
    """``{declared rule label: check}`` of every rule the loader checks for ``t``."""
    return {r.label: check_of(r, t) for r in declared_rules(t)}

"""Data shapes: the same sample written the ways real files spell their values, to load-test each.

* ``sample``: the sample as it always was (a mix of ISO and SQLite timestamps, prices on their tick).
* ``iso-micro``: every timestamp distinct, written as Python's ``datetime.isoformat()`` writes ``now()``:
  'YYYY-MM-DDTHH:MM:SS.ffffff' (no two alike: the worst case for a cache of distinct values); and, as in a
  file a user brought to the load benchmark, every OHLCV indicator filled and rounded to four decimals (the
  warm-up of each window filled back from its first value: ``ohlcv.filled_indicators``).
* ``full-precision``: every REAL as computed, never rounded: 15 to 17 significant digits (prices times a
  vendor's adjustment factor, indicators and the rest to their last digit).
* ``sqlite-now``: the columns the platform's inserts stamp (created_at, last_updated, enriched_at) written as
  SQLite's ``CURRENT_TIMESTAMP`` writes them, 'YYYY-MM-DD HH:MM:SS', in bursts: a run of inserts gives many
  consecutive rows one second. A column the registry reads as UTC holds UTC (what CURRENT_TIMESTAMP gives);
  the others hold the platform's local time (Asia/Seoul), as its code writes them.

Every shape draws the sample from the same generator in the same order and changes only how values are
spelled (and, in iso-micro, fills the indicators' warm-up), with draws of its own: the same arguments give the
same rows, row counts and planted defects in every shape. ``iso-micro`` and ``sqlite-now`` rewrite the finished
file's well-formed timestamps (a planted malformed one is left as it is); ``full-precision`` and iso-micro's
indicators are applied while the rows are made, since prices feed the indicators and other tables.
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from quantdbops import PLATFORM_TZ
from quantdbops.registry import migratable_tables
from sample.prices import full_digits


class Shape(StrEnum):
    """How the sample spells its values (see the module docstring)."""

    SAMPLE = "sample"
    ISO_MICRO = "iso-micro"
    FULL_PRECISION = "full-precision"
    SQLITE_NOW = "sqlite-now"


SHAPES: tuple[str, ...] = tuple(s.value for s in Shape)
# Shapes whose OHLCV indicators are filled and rounded to so many decimal places (no draws: the rows stay).
INDICATOR_DECIMALS: dict[Shape, int] = {Shape.ISO_MICRO: 4}

# Timestamp columns of the file outside the registry's tables (not migrated, written by the same code).
_OTHER_STAMPS: dict[str, tuple[str, ...]] = {
    "etfs": ("created_at", "last_updated"), "kelly_sizing": ("created_at",), "filter_cache_stage0": ("created_at",),
    "filter_cache_stage1": ("created_at",), "filter_cache_stage2": ("created_at",), "kis_api_logs": ("timestamp",),
}
# The columns an insert or update stamps with the moment it ran (the others hold the time of an event).
INSERT_STAMPS = ("created_at", "last_updated", "enriched_at")
# Tables written day by day, in day order (the rows of one day inserted together); the others were written by
# one run over the whole table in rowid order (a backfill, a refresh).
_DAILY = ("exchange_rate_history", "global_market_indices", "market_sentiment", "etf_holdings", "trades")
_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?")
_LOCAL = ZoneInfo(PLATFORM_TZ)


def stamp_columns() -> dict[str, tuple[str, ...]]:
    """Every timestamp column of the file: source table -> columns."""
    out = {t.source or t.name: tuple(c.source_column for c in t.columns if c.kind == "timestamptz" and c.source_column)
           for t in migratable_tables()}
    return {**out, **_OTHER_STAMPS}


def utc_columns() -> set[tuple[str, str]]:
    """The (table, column) pairs the registry reads as UTC: SQLite's CURRENT_TIMESTAMP."""
    return {(t.source or t.name, c.source_column) for t in migratable_tables() for c in t.columns
            if c.kind == "timestamptz" and c.source_column and c.source_tz == "UTC"}


def parse_stamp(value: object) -> datetime | None:
    """A well-formed timestamp as the generator writes it, None for anything else (NULL or a planted defect)."""
    if not isinstance(value, str) or not _STAMP.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None  # e.g. 24:00:00


def _rows(conn: sqlite3.Connection, table: str, column: str) -> Iterator[tuple[int, datetime]]:
    """(rowid, moment) of the column's well-formed stamps, in rowid order (each distinct text parsed once)."""
    parsed: dict[object, datetime | None] = {}
    for rowid, value in conn.execute(f'SELECT rowid, "{column}" FROM "{table}" ORDER BY rowid'):
        if value not in parsed:
            parsed[value] = parse_stamp(value)
        if (moment := parsed[value]) is not None:
            yield rowid, moment


def _update(conn: sqlite3.Connection, table: str, column: str, values: list[tuple[str, int]]) -> None:
    conn.executemany(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?', values)


def iso_micro(conn: sqlite3.Connection, rng: random.Random) -> None:
    """Every well-formed timestamp of the file given microseconds of its own: its own if it had some, else
    drawn; a moment another cell already holds moves on by a few milliseconds at most."""
    seen: set[datetime] = set()
    for table, columns in stamp_columns().items():
        for column in columns:
            out = []
            for rowid, stamped in _rows(conn, table, column):
                moment = stamped.replace(microsecond=stamped.microsecond or rng.randrange(1, 1_000_000))
                while moment in seen or moment.microsecond == 0:  # rows stamped alike in the sample
                    moment += timedelta(microseconds=rng.randrange(1, 2000))
                seen.add(moment)
                out.append((moment.isoformat(), rowid))
            _update(conn, table, column, out)


def sqlite_now(conn: sqlite3.Connection, rng: random.Random) -> None:
    """The insert stamps rewritten as runs of inserts stamp them: 'YYYY-MM-DD HH:MM:SS', a burst of rows per
    second. A run starts at the latest moment the sample gives its rows (so no row is stamped before the
    day it is about); UTC columns get that moment in UTC."""
    utc = utc_columns()
    for table, columns in stamp_columns().items():
        for column in (c for c in columns if c in INSERT_STAMPS):
            rows = list(_rows(conn, table, column))
            runs: list[list[tuple[int, datetime]]] = []
            for rowid, moment in rows:
                if runs and (table not in _DAILY or runs[-1][-1][1].date() == moment.date()):
                    runs[-1].append((rowid, moment))
                else:
                    runs.append([(rowid, moment)])
            out = []
            for run in runs:
                clock = max(m for _, m in run).replace(microsecond=0) - timedelta(seconds=1)
                left = 0
                for rowid, _ in run:
                    if left == 0:  # the next second, and how many rows are inserted within it
                        clock += timedelta(seconds=1)
                        left = rng.randint(50, 400)
                        moment = clock.replace(tzinfo=_LOCAL).astimezone(UTC) if (table, column) in utc else clock
                        text = moment.strftime("%Y-%m-%d %H:%M:%S")
                    left -= 1
                    out.append((text, rowid))
            _update(conn, table, column, out)


def full_precision_row(row: dict[str, object], real_columns: set[str]) -> dict[str, object]:
    """A row with each REAL that is no whole number at full precision (a whole number, such as a clamp's 0.0 or
    100.0, is exact as it is)."""
    return {c: full_digits(v) if c in real_columns and isinstance(v, float) and not v.is_integer() else v
            for c, v in row.items()}


def reshape(conn: sqlite3.Connection, shape: Shape, seed: int) -> None:
    """Rewrite the finished file's timestamps for ``shape`` (full-precision is applied as rows are made)."""
    rng = random.Random(f"{seed}:{shape.value}")
    if shape is Shape.ISO_MICRO:
        iso_micro(conn, rng)
    elif shape is Shape.SQLITE_NOW:
        sqlite_now(conn, rng)

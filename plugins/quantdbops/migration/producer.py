"""Producers: read a rowid range of a source table, check, render COPY text, hash each row.

SQLite checks most columns and renders and escapes the text part (see ``source_plan.py``); dates are checked
and rendered here once per distinct value, timestamps a batch at a time where the batch spells them alike
(every value distinct, as ``isoformat()`` writes ``now()``, defeats a cache), else once per distinct value;
numbers are rendered exactly (shortest round-trip digits) a whole batch at a time with orjson, the rare values
JSON spells differently re-spelled in the batch's JSON, with a row-by-row path for the rare text or blob in a
numeric column. Big tables are cut into rowid ranges read by separate processes while the parent only forwards
their bytes to PostgreSQL's COPY. Each producer returns its counts, per-day checksums and rejects; the parent
adds them up.
Nothing here touches PostgreSQL.

Producers read through apsw (its own SQLite build) rather than the standard ``sqlite3`` module: the same query
hands its values to Python about 2.7 times faster (1,008,000 rows of 21 numbers: 0.72 vs 1.96 CPU-s).
``produce`` itself only needs ``execute`` returning an iterable of tuples,
so a ``sqlite3`` connection works too (tests build small sources that way).
"""

from __future__ import annotations

import functools
import gc
import hashlib
import itertools
import math
import re
import struct
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from multiprocessing.connection import Connection
from operator import itemgetter
from pathlib import Path
from typing import Any

import apsw
import orjson

from quantdbops.migration.source_plan import (
    CALENDAR_REASONS,
    COPY_DELIMITER,
    COPY_NULL,
    LOOK_AT_NUMBERS,
    NO_DAY,
    NUMERIC_KINDS,
    UNKNOWN_REGION,
    SliceFilter,
    SourceQuery,
    TablePlan,
    canonical_region,
    escape_copy_text,
)
from quantdbops.registry import DUPLICATE_KEY, INVALID_TEXT, NON_NUMERIC, Table
from quantdbops.registry import table as registry_table

CHUNK_BYTES = 1 << 20
# Rows a batch: 1,000 keeps a batch's Python objects in the core's own cache between the passes over them (5,000
# cost 8-15% more producer CPU per 1M rows, 500 no less; measured on every bench shape).
FETCH_ROWS = 1000


def plain_number(value: float) -> str:
    """A float as a plain decimal that PostgreSQL's numeric echoes back unchanged (no exponent)."""
    if value == 0:
        return "0.0"  # numeric has no negative zero
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def render_numbers(values: tuple) -> bytes:
    """The exact, slow rendering of a row's numbers as COPY text (``plan.COPY_OPTIONS``).

    ``repr`` gives the shortest digits that read back as the same double; the exponent forms and negative
    zero are spelled plainly so PostgreSQL's numeric echoes exactly this text back.
    """
    out = []
    for v in values:
        if v is None:
            out.append(COPY_NULL)
        elif type(v) is float:
            out.append(repr(v) if 1e-4 <= abs(v) < 1e16 else plain_number(v))
        else:
            out.append(str(v))
    return COPY_DELIMITER.join(out).encode()


def render_numbers_batch(rows: list[tuple], negative_zero: bool = True) -> list[bytes]:
    """Exact rendering of many rows' numbers at once (every value a loadable number: NULL, int, finite float).

    orjson's Ryu gives the same shortest digits as ``repr`` (checked on 2M random doubles) about 20 times
    faster; the few values it spells otherwise (an exponent, negative zero) are re-spelled in the batch's
    JSON before it is cut into lines.
    """
    if not rows:
        return []
    if len(rows[0]) == 0:
        return [b""] * len(rows)
    return _split(_respell(orjson.dumps(rows), negative_zero))


def _split(js: bytes) -> list[bytes]:
    """A batch's JSON cut into COPY lines: JSON's ``,`` and ``null`` are the load's delimiter and NULL."""
    return js[2:-2].split(b"],[")


def render_numbers_json(rows: list[tuple], negative_zero: bool = True) -> list[bytes] | None:
    """The rows' numbers as exact COPY text, one line per row; None when a value may be no loadable number.

    One look at the batch's JSON instead of one per value: no string (a text value where a number belongs;
    a blob makes orjson refuse the batch), else None: each value needs a look. Infinities, which JSON writes
    as null, are not looked for here: the source query flags every row that may hold one
    (``plan.LOOK_AT_NUMBERS``) and those rows are checked value by value. ``negative_zero=False``: the caller
    knows no value can be -0.0 (``negative_zero_possible``), which saves two scans of the batch.
    """
    if not rows:
        return []
    if len(rows[0]) == 0:
        return [b""] * len(rows)
    try:
        js = orjson.dumps(rows)
    except TypeError:  # a blob
        return None
    if b'"' in js:
        return None
    return _split(_respell(js, negative_zero))


def _respell(js: bytes, negative_zero: bool = True) -> bytes:
    """A batch's JSON with each exponent token and each negative zero spelled as numeric echoes it.

    Found with ``find`` (the batch holds only numbers and nulls here, so an ``e`` is an exponent): a batch
    without them, nearly every batch, is returned as it is after one scan in C (three where -0.0 can occur).
    """
    hits = []
    i = js.find(b"e")
    while i != -1:
        start = max(js.rfind(b",", 0, i), js.rfind(b"[", 0, i)) + 1
        end = _token_end(js, i)
        hits.append((start, end))
        i = js.find(b"e", end)
    for zero in (b"-0.0,", b"-0.0]") if negative_zero else ():
        i = js.find(zero)
        while i != -1:  # always a whole token: no other number ends in "-0.0"
            hits.append((i, i + 4))
            i = js.find(zero, i + 4)
    if not hits:
        return js
    out, pos = [], 0
    for start, end in sorted(hits):
        out += (js[pos:start], render_numbers((float(js[start:end]),)))
        pos = end
    out.append(js[pos:])
    return b"".join(out)


def _token_end(js: bytes, i: int) -> int:
    comma, bracket = js.find(b",", i), js.find(b"]", i)
    return bracket if comma == -1 or bracket < comma else comma


def _affinity(declared: str) -> str:
    """SQLite's column affinity of a declared type (https://sqlite.org/datatype3.html, 3.1)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if any(k in t for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def negative_zero_possible(sconn: Any, table: Table) -> bool:
    """Whether a numeric column can hand the producer -0.0: SQLite stores a REAL, NUMERIC or INTEGER
    affinity column's -0.0 as 0 (a TEXT one's as text, which the JSON look catches); only a column without
    affinity (no declared type, or BLOB) keeps it. Mapped values (a value map) are assumed to.
    """
    declared = {r[1]: r[2] or "" for r in sconn.execute(f'PRAGMA table_info("{table.source}")')}
    for col in table.loaded_columns:
        if col.kind not in NUMERIC_KINDS:
            continue
        source = col.source_column or col.name
        if col.value_map or col.name in table.derived or _affinity(declared.get(source, "")) == "BLOB":
            return True
    return False


# 'YYYY-MM-DD', and 'YYYY-MM-DD HH:MM:SS' with 'T' or ' ' between, then optionally '.' and 1 to 6 digits
# (ASCII digits only: Python's \d would take any script's digits).
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIMESTAMP = re.compile(r"(([0-9]{4})-([0-9]{2})-([0-9]{2}))[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?")
_NULL = COPY_NULL.encode()
_CALENDAR_CACHE_MAX = 100_000  # distinct values kept per column and producer: memory stays flat


def _real_day(year: str, month: str, day: str) -> bool:
    """The date exists (2025-02-30 does not; nor does year 0, which PostgreSQL refuses)."""
    try:
        date(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


def render_date(raw: object, suffix: str = "") -> bytes | None:
    """A stored date as COPY text (as it is: 'YYYY-MM-DD'); the NULL marker for NULL; None when malformed: not
    text, another shape (2025/01/02, 2025-1-2, a time after it), or a day that cannot exist."""
    if raw is None:
        return _NULL
    if type(raw) is not str:
        return None
    m = _DATE.fullmatch(raw)
    return raw.encode() if m is not None and _real_day(*m.groups()) else None


def render_timestamp(raw: object, suffix: str = "") -> bytes | None:
    """A stored timestamp as COPY text 'YYYY-MM-DD HH:MM:SS.ffffff' (six digits, as validation's ``to_char``
    renders it) plus ``suffix`` ('+00' for UTC values; naive local ones are read in the session's zone);
    the NULL marker for NULL; None when malformed: not text, another shape, or a date or time that cannot exist
    (2025-02-30, 24:00:00, year 0).
    """
    if raw is None:
        return _NULL
    if type(raw) is not str:
        return None
    m = _TIMESTAMP.fullmatch(raw)
    if m is None:
        return None
    day, year, month, mday, hour, minute, second, fraction = m.groups()
    if not _real_day(year, month, mday) or hour >= "24" or minute >= "60" or second >= "60":
        return None
    return f"{day} {hour}:{minute}:{second}.{(fraction or '').ljust(6, '0')}{suffix}".encode()


_RENDERERS = {"date": render_date, "timestamptz": render_timestamp}


class CalendarTexts(dict):
    """Stored value -> COPY text of a date or timestamp column (None: malformed), once per distinct value.

    ``text_bytes``: the query hands text over as bytes (``SourceQuery.safe``), a blob as 0: bytes are text then,
    and a date or timestamp is ASCII or malformed."""

    def __init__(self, kind: str, utc: bool = False, text_bytes: bool = False) -> None:
        super().__init__()
        self.render = _RENDERERS[kind]
        self.suffix = "+00" if utc else ""
        self.text_bytes = text_bytes

    def __missing__(self, raw: object) -> bytes | None:
        if len(self) >= _CALENDAR_CACHE_MAX:
            self.clear()
        value = raw
        if self.text_bytes and type(raw) is bytes:
            try:
                value = raw.decode("ascii")  # a date or a time is spelled in ASCII, or it is malformed
            except UnicodeDecodeError:
                self[raw] = None
                return None
        out = self[raw] = self.render(value, self.suffix)
        return out


# A batch whose timestamps are all spelled alike is checked and rendered in a few passes in C over its joined
# bytes rather than value by value: where every value is distinct (``datetime.now().isoformat()``), the cache
# of distinct values saves nothing. The two spellings: 'YYYY-MM-DD HH:MM:SS' (SQLite's CURRENT_TIMESTAMP) and
# the same with six fraction digits (``isoformat()`` unless the microseconds are 0), 'T' or ' ' in between.
_STAMP_FORMS = {19: b"0000-00-00 00:00:00", 26: b"0000-00-00 00:00:00.000000"}
_DIGITS_TO_ZERO_T_TO_SPACE = bytes.maketrans(b"123456789T", b"000000000 ")
_MINUTE_TENS, _SECOND_TENS = 14, 17  # offsets in a value: tens digit of the minute and of the second
_DAY_AND_HOUR = itemgetter(slice(0, 13))  # 'YYYY-MM-DD?HH'
_BELOW_SIX = b"012345"
_PROBE = 32  # the first values of a batch, looked at for repetition


@functools.lru_cache(maxsize=8)
def _stamp_template(width: int, n: int) -> bytes:
    """What ``n`` well-formed values of one spelling, newline-joined, become with digits 0 and 'T' a space."""
    return b"\n".join([_STAMP_FORMS[width]] * n)


class TimestampColumn:
    """A timestamp column's values of one batch as COPY text, each exactly as ``render_timestamp`` gives it
    (None: malformed). A batch all in one of ``_STAMP_FORMS`` is done at once: the joined bytes are compared
    with a template (digits, separators, no other byte, no newline inside a value), the tens of minutes and
    seconds looked at with strided slices, each distinct day and hour checked once (the day exists, the hour is
    below 24), then 'T' becomes ' ' and the missing fraction and the zone are appended. Any other batch (a
    NULL, a mix of spellings, a value the checks refuse) goes value by value through ``CalendarTexts``."""

    def __init__(self, utc: bool = False, text_bytes: bool = False) -> None:
        self.per_value = CalendarTexts("timestamptz", utc, text_bytes).__getitem__
        self.suffix = b"+00" if utc else b""
        self.day_hours: dict[object, bool] = {}  # 'YYYY-MM-DD?HH' -> day and hour exist

    def __call__(self, values: list) -> list[bytes | None]:
        # Values that repeat (a burst of inserts stamped within one second) are cheaper through the cache.
        repeating = len(set(values[:_PROBE])) <= _PROBE // 2
        rendered = None if repeating or not values else self._at_once(values)
        return rendered if rendered is not None else list(map(self.per_value, values))

    def _at_once(self, values: list) -> list[bytes] | None:
        n = len(values)
        try:
            joined = b"\n".join(values) if type(values[0]) is bytes else "\n".join(values).encode()
        except (TypeError, UnicodeEncodeError):  # a NULL, a number, text and bytes mixed, a lone surrogate
            return None
        step, rest = divmod(len(joined) + 1, n)
        width = step - 1
        if (rest or width not in _STAMP_FORMS
                or joined.translate(_DIGITS_TO_ZERO_T_TO_SPACE) != _stamp_template(width, n)
                or joined[_MINUTE_TENS::step].translate(None, _BELOW_SIX)
                or joined[_SECOND_TENS::step].translate(None, _BELOW_SIX)
                or not all(map(self._day_hour_exists, set(map(_DAY_AND_HOUR, values))))):
            return None
        joined = joined.replace(b"T", b" ")  # only ever between date and time now
        tail = (b".000000" if width == 19 else b"") + self.suffix
        if tail:
            joined = joined.replace(b"\n", tail + b"\n") + tail
        return joined.split(b"\n")

    def _day_hour_exists(self, prefix: object) -> bool:
        known = self.day_hours.get(prefix)
        if known is None:
            if len(self.day_hours) >= _CALENDAR_CACHE_MAX:
                self.day_hours.clear()
            text = prefix.decode() if type(prefix) is bytes else str(prefix)  # ASCII: the template said so
            known = self.day_hours[prefix] = _real_day(text[:4], text[5:7], text[8:10]) and text[11:13] < "24"
        return known


def calendar_column(kind: str, utc: bool = False, text_bytes: bool = False) -> Callable[[list], list]:
    """A date or timestamp column's renderer of a batch's values: dates through the cache of distinct values
    (a day repeats on every row of that day), timestamps through ``TimestampColumn``."""
    if kind == "timestamptz":
        return TimestampColumn(utc, text_bytes)
    get = CalendarTexts(kind, utc, text_bytes).__getitem__
    return lambda values: list(map(get, values))


@dataclass
class ProducerResult:
    """Counts, checksums and rejects of one rowid range."""

    stats: dict = field(default_factory=dict)  # region -> [source_rows, loaded, Counter(reason)]
    rows: Counter = field(default_factory=Counter)  # (region, day) -> rows
    sums: dict = field(default_factory=lambda: defaultdict(int))  # (region, day) -> sum of row hashes
    rejects: list = field(default_factory=list)  # (rowid, region, reason, detail)

    def merge(self, other: ProducerResult) -> None:
        for region, (n, loaded, rej) in other.stats.items():
            mine = self.stats.setdefault(region, [0, 0, Counter()])
            mine[0] += n
            mine[1] += loaded
            mine[2].update(rej)
        self.rows.update(other.rows)
        for k, v in other.sums.items():
            self.sums[k] += v
        self.rejects += other.rejects


def open_reader(path: str | Path) -> apsw.Connection:
    """The source file opened read-only for a producer (``source.open_source`` has checked it already).

    Without apsw's statement cache: a producer runs each statement once, and a cached statement keeps its share
    of the connection's lookaside memory (a few hundred small slots). With the temp tables' and pragmas'
    statements cached, the source query found the pool full and took every per-row temporary string (dozens a
    row) from malloc instead, a cost paid on every row."""
    return apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY, statementcachesize=0)


def read_source(path: str | Path, table_name: str, flt: SliceFilter, rowid_range: tuple[int, int] | None,
                known: list[tuple[str, str]] | None, dups: dict[int, int],
                emit: Callable[[bytes], None]) -> ProducerResult:
    """One producer run on its own reader of the file: the temp tables it joins, then ``produce``."""
    reader = open_reader(path)
    try:
        prepare_source(reader, known, dups)
        return produce(reader, table_name, flt, rowid_range, dups, emit)
    finally:
        reader.close()


def prepare_source(sconn: Any, known: list[tuple[str, str]] | None, dups: dict[int, int]) -> None:
    """The temp tables the query joins: the target's tickers, each source ticker's region, whether the target
    has that (ticker, region) and the ticker as COPY text (rendered once here instead of on each of its rows),
    and the key collisions found beforehand."""
    sconn.execute("DROP TABLE IF EXISTS temp.known_tickers")
    sconn.execute("CREATE TEMP TABLE known_tickers (ticker TEXT, region TEXT, PRIMARY KEY (ticker, region))"
                  " WITHOUT ROWID")
    sconn.execute("DROP TABLE IF EXISTS temp.ticker_lookup")
    sconn.execute("CREATE TEMP TABLE ticker_lookup (ticker TEXT PRIMARY KEY, region TEXT, known INTEGER, "
                  "copy_text TEXT) WITHOUT ROWID")
    if known is not None:
        sconn.executemany("INSERT OR IGNORE INTO temp.known_tickers VALUES (?, ?)", known)
        # The source ticker's region as the slices spell it (NULL when it names none).
        region = canonical_region("t.region")
        sconn.execute(f"INSERT OR IGNORE INTO temp.ticker_lookup SELECT t.ticker, {region}, EXISTS (SELECT 1 FROM "
                      f"temp.known_tickers k WHERE k.ticker = t.ticker AND k.region = {region}), "
                      f"{escape_copy_text('CAST(t.ticker AS TEXT)')} FROM main.tickers t "
                      "WHERE t.ticker IS NOT NULL ORDER BY t.rowid")  # a repeated ticker: the first row counts
    sconn.execute("DROP TABLE IF EXISTS temp.dup_rows")
    sconn.execute("CREATE TEMP TABLE dup_rows (rowid INTEGER PRIMARY KEY, kept INTEGER)")
    sconn.executemany("INSERT INTO temp.dup_rows VALUES (?, ?)", dups.items())


# Per checksum bucket, one integer holds both the row count (above bit 96) and the sum of the rows'
# signed 64-bit hashes (below): one dict update per row instead of two, exact for 2**32 rows a bucket.
_COUNT_SHIFT = 96
_ONE_ROW = 1 << _COUNT_SHIFT
_DIGEST = type(hashlib.sha256()).digest


@functools.lru_cache(maxsize=4)
def _first_64_bits(n: int) -> Callable[[bytes], tuple[int, ...]]:
    """Of ``n`` SHA-256 digests joined, each one's first 8 bytes as a signed big-endian integer: one unpack of
    the batch in C instead of one per row."""
    return struct.Struct(">" + "q24x" * n).unpack


def _unpack(total: int) -> tuple[int, int]:
    """(rows, sum of hashes) of a packed bucket total."""
    rows = (total + (1 << (_COUNT_SHIFT - 1))) >> _COUNT_SHIFT
    return rows, total - (rows << _COUNT_SHIFT)


@contextmanager
def _without_cycle_collector() -> Iterator[None]:
    """The producer makes millions of short-lived tuples and no reference cycles: the cycle collector would
    only walk them. Memory stays flat (reference counting frees)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def produce(sconn: Any, table_name: str, flt: SliceFilter, rowid_range: tuple[int, int] | None,
            dups: dict[int, int], emit: Callable[[bytes], None],
            chunk_bytes: int = CHUNK_BYTES) -> ProducerResult:
    """Stream one rowid range: emit COPY text in chunks, return counts, checksums and rejects."""
    with _without_cycle_collector():
        return _produce(sconn, table_name, flt, rowid_range, dups, emit, chunk_bytes)


def source_encoding(sconn: Any) -> str:
    """The text encoding of the source file ('UTF-8', 'UTF-16le' or 'UTF-16be')."""
    return next(iter(sconn.execute("PRAGMA encoding")))[0]


_INT64 = (-(2**63), 2**63 - 1)


def _batches(sconn: Any, plan: TablePlan, flt: SliceFilter, duplicates: str | None,
             rowid_range: tuple[int, int] | None) -> Iterator[tuple[SourceQuery, list[tuple]]]:
    """The query's rows in batches (rowid order). Where the fast query meets a value it cannot hand over as
    text (text that is no UTF-8 in a date, timestamp or numeric column), the rest of the range is read by
    the safe query, which hands such values over as bytes; the batch in flight is read again."""
    query = plan.query(flt, duplicates=duplicates, rowid_range=rowid_range)
    cur = iter(sconn.execute(query.sql, query.params))
    last = None
    while True:
        try:
            batch = list(itertools.islice(cur, FETCH_ROWS))
        except UnicodeDecodeError:
            if query.safe:
                raise
            lo = last + 1 if last is not None else (rowid_range or _INT64)[0]
            query = plan.query(flt, duplicates=duplicates, rowid_range=(lo, (rowid_range or _INT64)[1]), safe=True)
            cur = iter(sconn.execute(query.sql, query.params))
            continue
        if not batch:
            return
        last = batch[-1][0]
        yield query, batch


def _utf8_texts(encoding: str) -> Callable[[object], bytes]:
    """The text part of a source in another encoding as UTF-8 bytes (a lone surrogate stays invalid)."""
    codec = {"UTF-16le": "utf-16-le", "UTF-16be": "utf-16-be"}.get(encoding, "utf-8")

    def convert(value: object) -> bytes:
        text = value.decode(codec, "surrogatepass") if type(value) is bytes else str(value)
        return text.encode("utf-8", "surrogatepass")

    return convert


def _text_ok(texts: list[bytes]) -> bool:
    """The batch's text part holds no NUL byte and is valid UTF-8 (one look in C at the whole batch)."""
    joined = b"".join(texts)
    if b"\0" in joined:
        return False
    if joined.isascii():
        return True
    try:
        joined.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _produce(sconn: Any, table_name: str, flt: SliceFilter, rowid_range: tuple[int, int] | None,
             dups: dict[int, int], emit: Callable[[bytes], None], chunk_bytes: int) -> ProducerResult:
    """The body of ``produce``.

    Rows come as ``(rowid, reason, slice, text, t1 .. tj, n1 .. nk)`` (see ``TablePlan.query``): ``slice`` is
    the region a row is filed under (with its day, the checksum bucket of a loaded row); ``text`` is the row's
    text part, bytes as stored in a UTF-8 source.
    The common batch costs one dict lookup per date or timestamp, one JSON rendering of its numbers, one look
    at its text bytes and, per row, one line, one SHA-256 and one dict update; a batch with anything unusual
    goes row by row.
    """
    table = registry_table(table_name)
    encoding = source_encoding(sconn)
    plan = TablePlan(table, text_as_blob=encoding == "UTF-8")
    to_utf8 = None if encoding == "UTF-8" else _utf8_texts(encoding)
    first = plan.query(flt)
    n_text, n_stamps = first.text_columns, len(first.calendar)
    first_number = 4 + n_stamps
    has_numbers = len(first.columns) > n_text + n_stamps
    checker = _RowChecker(first, dups, negative_zero_possible(sconn, table))
    negative_zero = checker.negative_zero
    # Per query kind (fast, safe): each date or timestamp column's renderer of a batch's values.
    calendars = {safe: [calendar_column(kind, utc, safe) for _, kind, utc in first.calendar] for safe in (False, True)}
    stamp_of = [itemgetter(4 + j) for j in range(n_stamps)]
    numbers_of = itemgetter(slice(first_number, None))
    text_of, slice_of, reason_of = itemgetter(3), itemgetter(2), itemgetter(1)
    day_at = plan.day_column()
    # a rendered date is its own day, a rendered timestamp's day its first ten characters
    day_of = None if day_at is None or first.calendar[day_at][1] == "date" else itemgetter(slice(0, 10))
    no_day = NO_DAY.encode()
    join_fields = COPY_DELIMITER.encode().join
    res = ProducerResult()
    sha256, digest, first_64_bits = hashlib.sha256, _DIGEST, _first_64_bits
    one = _ONE_ROW
    buckets: defaultdict[tuple[bytes, str | None], int] = defaultdict(int)  # (day, region) -> rows and hashes
    pending: list[bytes] = []
    size = 0
    for query, read in _batches(sconn, plan, flt, "temp.dup_rows" if dups else None, rowid_range):
        # a UTF-16 file: its text part as UTF-8, as a UTF-8 file gives it
        batch = read if to_utf8 is None else [(*r[:3], to_utf8(r[3]), *r[4:]) for r in read]
        texts = list(map(text_of, batch))
        stamps = [render(list(map(at, batch))) for render, at in zip(calendars[query.safe], stamp_of, strict=True)]
        numbers = list(map(numbers_of, batch))
        rendered = render_numbers_json(numbers, negative_zero)
        text_ok = _text_ok(texts)
        clean = batch
        if rendered is None or not text_ok or any(map(reason_of, batch)) or not all(map(all, stamps)):
            # a rarer batch: a reject, a value that may be no number, text PostgreSQL cannot hold, or a row
            # SQLite wants its numbers looked at
            keep = checker.sort_out(batch, texts, stamps, numbers, rendered, text_ok, res)
            if len(keep) < len(batch):
                clean = [batch[i] for i in keep]
                texts = [texts[i] for i in keep]
                stamps = [[column[i] for i in keep] for column in stamps]
                numbers = [numbers[i] for i in keep]
                if rendered is not None:
                    rendered = [rendered[i] for i in keep]
            if rendered is None:
                rendered = render_numbers_batch(numbers, negative_zero)
        parts = [texts] if n_text else []
        parts += stamps
        if has_numbers:
            parts.append(rendered)
        lines = list(map(join_fields, zip(*parts, strict=True))) if len(parts) > 1 else list(parts[0]) if parts else []
        hashes = first_64_bits(len(lines))(b"".join(map(digest, map(sha256, lines))))
        days = ([no_day] * len(lines) if day_at is None else stamps[day_at] if day_of is None
                else map(day_of, stamps[day_at]))
        for key, row_hash in zip(zip(days, map(slice_of, clean), strict=True), hashes, strict=True):
            buckets[key] += row_hash + one
        pending += lines
        size += sum(map(len, lines)) + len(lines)
        if size >= chunk_bytes:
            pending.append(b"")
            emit(b"\n".join(pending))
            pending.clear()
            size = 0
    if pending:
        pending.append(b"")
        emit(b"\n".join(pending))
    loaded: Counter = Counter()  # region -> rows loaded
    for (day_bytes, region_or_none), total in buckets.items():
        day, region = day_bytes.decode(), region_or_none or ""  # a loaded row's day is a rendered date: ASCII
        n, hash_sum = _unpack(total)
        res.rows[(region, day)], res.sums[(region, day)] = n, hash_sum
        loaded[region] += n
    # Every source row was either loaded (in a bucket) or rejected.
    for region in loaded.keys() | checker.rejected.keys():
        rej = checker.rejected.get(region, Counter())
        res.stats[region or UNKNOWN_REGION] = [loaded[region] + sum(rej.values()), loaded[region], rej]
    return res


# A COPY text line's fields, as bytes (an escaped delimiter stays inside its field).
_FIELD = re.compile(rb"(?:[^\\" + re.escape(COPY_DELIMITER.encode()) + rb"]|\\.)*", re.S)


def _text_problem(text: bytes) -> tuple[int, str] | None:
    """(index of the first field PostgreSQL cannot hold as text, why), None when every field is fine."""
    pos = 0
    for i in itertools.count():
        m = _FIELD.match(text, pos)
        field_ = m.group()  # type: ignore[union-attr]  # matches the empty string at worst
        if b"\0" in field_:
            return i, "a NUL byte"
        try:
            field_.decode("utf-8")
        except UnicodeDecodeError:
            return i, "not valid UTF-8"
        pos = m.end() + 1  # type: ignore[union-attr]
        if pos > len(text):
            return None
    raise AssertionError("unreachable")


class _RowChecker:
    """The row-by-row path of a batch: each row's first reason, wherever it was found, then exact numbers."""

    def __init__(self, query: SourceQuery, dups: dict[int, int], negative_zero: bool = True) -> None:
        self.negative_zero = negative_zero
        self.rank = {reason: i for i, reason in enumerate(query.reasons)}
        self.dups = dups
        n_text = query.text_columns
        self.text_reasons = [f"{INVALID_TEXT}:{name}" for name in query.columns[:n_text]]
        self.stamp_reasons = [f"{CALENDAR_REASONS[kind]}:{name}" for name, kind, _ in query.calendar]
        self.number_reasons = [f"{NON_NUMERIC}:{name}" for name in query.columns[n_text + len(query.calendar):]]
        self.rejected: defaultdict[str | None, Counter] = defaultdict(Counter)

    def first(self, reasons: list[str]) -> str:
        last = len(self.rank)
        return min(reasons, key=lambda r: self.rank.get(r, last))

    def reject(self, res: ProducerResult, row: tuple, reason: str, notes: dict[str, str] | None = None) -> None:
        kind, _, detail = reason.partition(":")
        region = row[2]
        self.rejected[region][kind] += 1
        if kind == DUPLICATE_KEY:
            detail = f"key already loaded from source rowid {self.dups.get(row[0])}"
        elif reason == row[1] and kind == INVALID_TEXT:  # SQLite's own finding: the only one it makes
            detail = f"{detail}: a blob"
        elif notes and reason in notes:
            detail = f"{detail}: {notes[reason]}"
        res.rejects.append((row[0], region or UNKNOWN_REGION, kind, detail))

    def sort_out(self, batch: list[tuple], texts: list[bytes], stamps: list[list], numbers: list[tuple],
                 rendered: list[bytes] | None, text_ok: bool, res: ProducerResult) -> list[int]:
        """The positions of the batch's loadable rows; every other row is rejected by its first reason.

        ``rendered``: the batch's numbers as JSON spells them, or None when the JSON showed a value that may
        be no loadable number (then every row's values are looked at); otherwise only the rows SQLite flags
        (``LOOK_AT_NUMBERS``) or rejects have their values looked at. ``text_ok``: the batch's text is known to
        be fine; otherwise each row's text is looked at.
        """
        keep: list[int] = []
        for i, row in enumerate(batch):
            found = [row[1]] if row[1] is not None and row[1] != LOOK_AT_NUMBERS else []
            found += [r for r, column in zip(self.stamp_reasons, stamps, strict=True) if column[i] is None]
            notes = None
            if not text_ok and (problem := _text_problem(texts[i])) is not None:
                found.append(self.text_reasons[problem[0]])
                notes = {self.text_reasons[problem[0]]: problem[1]}
            # Each value is looked at when the batch's JSON or SQLite asks for it, or when the row is rejected
            # anyway (a number may be its first reason).
            if rendered is None or row[1] is not None or found:
                found += [r for r, v in zip(self.number_reasons, numbers[i], strict=True) if not _loadable_number(v)]
            if found:
                self.reject(res, row, self.first(found), notes)
            else:
                keep.append(i)
        return keep


def _loadable_number(v: object) -> bool:
    """NULL, an integer or a finite real (JSON writes infinity as null; numeric would store it silently)."""
    return v is None or type(v) is int or (type(v) is float and math.isfinite(v))


def worker(out: Connection, path: str, table_name: str, flt: SliceFilter, rowid_range: tuple[int, int],
           known: list[tuple[str, str]] | None, dups: dict[int, int]) -> None:
    """Process entry point: data chunks as bytes messages, then b'' and the result (or the error)."""
    try:
        result = read_source(path, table_name, flt, rowid_range, known, dups, out.send_bytes)
        out.send_bytes(b"")
        out.send(("ok", result))
    except BaseException:  # the parent re-raises it with the producer's traceback
        out.send_bytes(b"")
        out.send(("error", traceback.format_exc()))
    finally:
        out.close()

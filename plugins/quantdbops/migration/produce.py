"""Producers: read a rowid range of a source table, check, render COPY text, hash each row.

Rendering numbers exactly (Python's shortest ``repr``, done in C by psycopg's COPY formatter) is the
costliest part of the load, so big tables are cut into rowid ranges read by separate processes while the
parent only forwards their bytes to PostgreSQL's COPY. Each producer returns its counts, per-day
checksums and rejects; the parent adds them up. Nothing here touches PostgreSQL.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from multiprocessing.connection import Connection

from quantdbops.migration.plan import DUPLICATE_KEY, NON_NUMERIC, UNKNOWN_REGION, SliceFilter, TablePlan
from quantdbops.registry import table as registry_table

try:  # psycopg's C row formatter: the same code COPY's write_row uses (pinned psycopg 3.3.x)
    from psycopg._copy_base import format_row_text as _format_row_text
    from psycopg.adapt import Transformer
except ImportError:  # pragma: no cover - only if psycopg moves it; the pure-Python path below is equivalent
    _format_row_text = None
    Transformer = None  # type: ignore[assignment,misc]

CHUNK_BYTES = 1 << 20
FETCH_ROWS = 5000
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def plain_number(value: float) -> str:
    """A float as a plain decimal that PostgreSQL's numeric echoes back unchanged (no exponent)."""
    if value == 0:
        return "0.0"  # numeric has no negative zero
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def _py_format(values: tuple, out: bytearray) -> None:
    parts = []
    for v in values:
        if v is None:
            parts.append("\\N")
        elif isinstance(v, str):
            parts.append(v.translate(_ESCAPES))
        else:
            parts.append(repr(v) if isinstance(v, float) else str(v))
    out += ("\t".join(parts) + "\n").encode()


class RowFormatter:
    """COPY text of one row, exactly as psycopg's ``Copy.write_row`` would send it."""

    def __init__(self) -> None:
        self._tx = Transformer() if Transformer is not None else None

    def __call__(self, values: tuple) -> bytearray:
        out = bytearray()
        if _format_row_text is not None:
            _format_row_text(values, self._tx, out)
        else:
            _py_format(values, out)
        return out


def render_row(fmt: RowFormatter, values: tuple) -> bytearray:
    """COPY text of a checked row (with its newline). Rare forms are rewritten so numeric echoes them:
    ``repr``'s exponent (1e-05) and negative zero."""
    line = fmt(values)
    if b"e" in line or b"-0.0" in line:
        # repr uses an exponent only outside [1e-4, 1e16); zero is rewritten for its sign.
        line = fmt(tuple(plain_number(v) if type(v) is float and not 1e-4 <= abs(v) < 1e16 else v
                         for v in values))
    return line


def non_finite_column(values: tuple, names: tuple[str, ...]) -> str | None:
    for v, n in zip(values, names, strict=True):
        if type(v) is float and not math.isfinite(v):
            return n
    return None


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


def prepare_source(sconn: sqlite3.Connection, known: list[tuple[str, str]] | None, dups: dict[int, int]) -> None:
    """The temp tables the query joins: the target's tickers and the key collisions found beforehand."""
    sconn.execute("DROP TABLE IF EXISTS temp.known_tickers")
    sconn.execute("CREATE TEMP TABLE known_tickers (ticker TEXT, region TEXT, PRIMARY KEY (ticker, region))"
                  " WITHOUT ROWID")
    if known is not None:
        sconn.executemany("INSERT OR IGNORE INTO temp.known_tickers VALUES (?, ?)", known)
    sconn.execute("DROP TABLE IF EXISTS temp.dup_rows")
    sconn.execute("CREATE TEMP TABLE dup_rows (rowid INTEGER PRIMARY KEY, kept INTEGER)")
    sconn.executemany("INSERT INTO temp.dup_rows VALUES (?, ?)", dups.items())


def produce(sconn: sqlite3.Connection, table_name: str, flt: SliceFilter, rowid_range: tuple[int, int] | None,
            dups: dict[int, int], emit: Callable[[bytes], None],
            chunk_bytes: int = CHUNK_BYTES) -> ProducerResult:
    """Stream one rowid range: emit COPY text in chunks, return counts, checksums and rejects."""
    table = registry_table(table_name)
    plan = TablePlan(table)
    query = plan.query(flt, duplicates="temp.dup_rows" if dups else None, rowid_range=rowid_range)
    fmt = RowFormatter()
    res = ProducerResult()
    md5 = hashlib.md5
    from_bytes = int.from_bytes
    rows_c, sums_c, stats = res.rows, res.sums, res.stats
    buf = bytearray()
    cur = sconn.execute(query.sql, query.params)
    while batch := cur.fetchmany(FETCH_ROWS):
        for row in batch:
            region = row[2] or UNKNOWN_REGION
            st = stats.get(region)
            if st is None:
                st = stats[region] = [0, 0, Counter()]
            st[0] += 1
            reason = row[1]
            values = row[4:]
            if reason is None:
                line = render_row(fmt, values)
                if b"inf" in line or b"nan" in line:
                    bad = non_finite_column(values, query.columns)
                    if bad:  # PostgreSQL would store Infinity in numeric without a word
                        reason = f"{NON_NUMERIC}:{bad}"
            if reason is None:
                key = (region, row[3])
                rows_c[key] += 1
                sums_c[key] += from_bytes(md5(memoryview(line)[:-1]).digest()[:8], "big", signed=True)
                st[1] += 1
                buf += line
                if len(buf) >= chunk_bytes:
                    emit(bytes(buf))
                    buf.clear()
            else:
                kind, _, detail = reason.partition(":")
                st[2][kind] += 1
                if kind == DUPLICATE_KEY:
                    detail = f"key already loaded from source rowid {dups.get(row[0])}"
                res.rejects.append((row[0], region, kind, detail))
    if buf:
        emit(bytes(buf))
    return res


def worker(out: Connection, path: str, table_name: str, flt: SliceFilter, rowid_range: tuple[int, int],
           known: list[tuple[str, str]] | None, dups: dict[int, int]) -> None:
    """Process entry point: data chunks as bytes messages, then b'' and the result (or the error)."""
    try:
        sconn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        prepare_source(sconn, known, dups)
        result = produce(sconn, table_name, flt, rowid_range, dups, out.send_bytes)
        out.send_bytes(b"")
        out.send(("ok", result))
    except BaseException:  # the parent re-raises it with the producer's traceback
        out.send_bytes(b"")
        out.send(("error", traceback.format_exc()))
    finally:
        out.close()

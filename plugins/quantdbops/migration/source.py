"""The source SQLite file: opened read-only, checked before anything is written.

Every problem found here is a ``SourceError`` whose message says what is wrong and what to do: a
missing file, a file that is not SQLite, a corrupt one, a table or column the migration needs.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from quantdbops.registry import NOT_MIGRATED_SOURCE_TABLES, RegionRule, Table, migratable_tables


class SourceError(Exception):
    """The source file cannot be migrated as it is (a retry will not help); ``what_to_do`` where the problem
    has a more precise next step than pointing the run at the right file."""

    def __init__(self, message: str, what_to_do: str | None = None) -> None:
        super().__init__(message)
        self.what_to_do = what_to_do


def open_source(path: str | Path) -> sqlite3.Connection:
    """Open the file read-only (the source is evidence: it is never written)."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"source file {p} does not exist: check the spock_sqlite connection or the "
                          "source_path param, and that the file is mounted on the worker")
    if not p.is_file():
        raise SourceError(f"source path {p} is not a file")
    try:
        with p.open("rb") as fh:
            header = fh.read(16)
    except OSError as exc:
        raise SourceError(f"source file {p} cannot be read: {exc}") from exc
    if header != b"SQLite format 3\x00":
        raise SourceError(f"source file {p} is not an SQLite database (header {header[:16]!r}); "
                          "point the migration at spock_local.db itself, not a dump or an archive")
    # A URI, so the file is opened read-only and never created; the path percent-encoded, so '#', '?', '%',
    # spaces and non-ASCII names are the file's name and not parts of the URI.
    conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    # Text that is no UTF-8 (the loader quarantines its rows) must not fail a read: such bytes are kept as
    # surrogate escapes, never silently replaced.
    conn.text_factory = _tolerant_text
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise SourceError(f"source file {p} is corrupt ({exc}); restore it from the platform's copy") from exc
    return conn


def _tolerant_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def source_file(conn: sqlite3.Connection) -> str:
    """The path of the file an open source connection reads (producers open their own reader on it)."""
    return conn.execute("PRAGMA database_list").fetchone()[2]


@dataclass
class SourceReport:
    """What the source holds compared with what the registry expects."""

    path: str
    size_bytes: int
    tables: dict[str, int]  # source table -> row count
    missing_tables: list[str] = field(default_factory=list)  # needed by the selected target tables
    missing_columns: dict[str, list[str]] = field(default_factory=dict)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)  # unknown to the registry
    not_migrated: dict[str, str] = field(default_factory=dict)  # source table -> why

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path, "size_bytes": self.size_bytes, "tables": self.tables,
            "missing_tables": self.missing_tables, "missing_columns": self.missing_columns,
            "extra_columns": self.extra_columns, "not_migrated": self.not_migrated,
        }


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]


def expected_source_columns(table: Table) -> set[str]:
    return table.source_columns()


def inspect_source(conn: sqlite3.Connection, path: str | Path,
                   selected: list[Table] | None = None) -> SourceReport:
    """Row counts, and what is missing or unexpected, for the selected tables (default: all)."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    counts = {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    report = SourceReport(path=str(path), size_bytes=Path(path).stat().st_size, tables=counts)
    tables = selected if selected is not None else list(migratable_tables())
    needed_sources = {t.source for t in tables if t.source}
    if any(t.ticker_column or t.ticker_refs for t in tables):
        needed_sources.add("tickers")  # regions and orphans are resolved through it
    report.missing_tables = sorted(s for s in needed_sources if s not in counts)
    for t in tables:
        if t.source not in counts:
            continue
        have = set(_columns(conn, t.source))
        want = expected_source_columns(t)
        if want - have:
            report.missing_columns[t.source] = sorted(want - have)
        if have - want:
            report.extra_columns[t.source] = sorted(have - want)
    migrated_sources = {t.source for t in migratable_tables()}
    for n in names:
        if n not in migrated_sources:
            report.not_migrated[n] = NOT_MIGRATED_SOURCE_TABLES.get(
                n, "not part of the target schema (unknown to the registry)")
    return report


def require_complete(report: SourceReport) -> None:
    """Raise with every problem at once if the selected tables cannot be read from this source."""
    problems = []
    if report.missing_tables:
        problems.append(f"missing tables: {', '.join(report.missing_tables)}")
    for table, cols in report.missing_columns.items():
        problems.append(f"{table} lacks columns {', '.join(cols)}")
    if problems:
        raise SourceError(
            f"source {report.path} does not match the Spock schema the migration reads: "
            + "; ".join(problems)
            + ". Nothing was written. Check that the file is the platform's spock_local.db, or deselect "
            "the affected tables in the trigger form."
        )


_CODECS = {"UTF-8": "utf-8", "UTF-16le": "utf-16-le", "UTF-16be": "utf-16-be"}


def _json_value(kind: str, value: object, codec: str) -> object:
    """A stored SQLite value as JSON that PostgreSQL's jsonb takes, losing nothing.

    Numbers and text stay themselves; what JSON or jsonb cannot hold is tagged: an infinity (JSON has none),
    text with a NUL byte (jsonb refuses ``\\u0000``) or that is no valid text (invalid UTF-8), and a blob."""
    if kind == "real" and not math.isfinite(value):  # type: ignore[arg-type]
        return {"real": repr(value)}
    if kind == "text":
        raw = bytes(value)  # type: ignore[arg-type]
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            return {"text_hex": raw.hex(), "note": "not valid text in the file's encoding"}
        return {"text_hex": raw.hex(), "note": "holds a NUL byte"} if "\0" in text else text
    if kind == "blob":
        return {"blob_hex": bytes(value).hex()}  # type: ignore[arg-type]
    return value


def raw_rows(conn: sqlite3.Connection, table: str, rowids: list[int]) -> dict[int, dict]:
    """The stored source rows of ``rowids``, each as a JSON-ready dict of every column (see ``_json_value``)."""
    codec = _CODECS.get(conn.execute("PRAGMA encoding").fetchone()[0], "utf-8")
    names = _columns(conn, table)
    # Each value with its storage class; text as its bytes, so no value can fail the read.
    select = ", ".join(
        f"typeof({q}), CASE WHEN typeof({q}) = 'text' THEN CAST({q} AS BLOB) ELSE {q} END"
        for q in ('"' + n.replace('"', '""') + '"' for n in names))
    out: dict[int, dict] = {}
    for i in range(0, len(rowids), 500):
        chunk = rowids[i:i + 500]
        cur = conn.execute(f'SELECT rowid, {select} FROM main."{table}" WHERE rowid IN '
                           f"({', '.join('?' * len(chunk))})", chunk)
        for row in cur:
            out[row[0]] = {n: _json_value(row[1 + 2 * j], row[2 + 2 * j], codec) for j, n in enumerate(names)}
    return out


def source_key_is_unique(conn: sqlite3.Connection, table: Table) -> bool:
    """Whether a unique constraint of the source table makes its rows' natural key unique before mapping.

    The key's source columns: each key column's source (a region found through the row's ticker follows
    the ticker, so it adds nothing). A unique index (not partial) or an INTEGER PRIMARY KEY on some of them
    is enough. The file's own schema decides: a copy made without its constraints must not abort a COPY."""
    key_sources = set()
    for name in table.key:
        if name == "region" and table.region_rule is RegionRule.TICKER:
            continue
        source = table.derived.get(name) or table.column(name).source_column
        if source:
            key_sources.add(source)
    info = list(conn.execute(f'PRAGMA table_info("{table.source}")'))
    primary = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]
    uniques = []
    if len(primary) == 1 and next(r[2] for r in info if r[1] == primary[0]).upper() == "INTEGER":
        uniques.append({primary[0]})  # the rowid itself
    for index in conn.execute(f'PRAGMA index_list("{table.source}")').fetchall():
        if index[2] and not index[4]:  # unique, not partial
            columns = [r[2] for r in conn.execute(f'PRAGMA index_info("{index[1]}")')]
            if None not in columns:  # an index on an expression proves nothing here
                uniques.append(set(columns))
    return any(u <= key_sources for u in uniques)


def inspect_unknown_columns(sconn: sqlite3.Connection, table: Table) -> list[str]:
    """Source columns the registry does not know: reported, never silently carried or dropped."""
    have = [r[1] for r in sconn.execute(f'PRAGMA table_info("{table.source}")')]
    want = expected_source_columns(table)
    return [c for c in have if c not in want]

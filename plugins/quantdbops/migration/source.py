"""The source SQLite file: opened read-only, checked before anything is written.

Every problem found here is a ``SourceError`` whose message says what is wrong and what to do: a
missing file, a file that is not SQLite, a corrupt one, a table or column the migration needs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from quantdbops.registry import NOT_MIGRATED_SOURCE_TABLES, Table, migratable_tables


class SourceError(Exception):
    """The source file cannot be migrated as it is (a retry will not help)."""


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
    conn = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise SourceError(f"source file {p} is corrupt ({exc}); restore it from the platform's copy") from exc
    return conn


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

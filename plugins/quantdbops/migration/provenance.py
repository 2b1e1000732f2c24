"""Where a migration run's rows came from, recorded so that a later diagnosis can name it.

Each run records its source (name, size, modification time, SHA-256), the target it reached and its mode in
``ops.migration_sources``; a merged table's load records which run last wrote each key in
``ops.merged_keys``. ``prepare`` logs the previous run that loaded the database and warns when its file
differs; validation names the run and file that wrote a row the current source lacks.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from quantdbops.registry import Table
from quantdbops.sqlfiles import read_sql


@dataclass(frozen=True)
class SourceFile:
    """The file a run reads: its name as given (path or s3:// URI) and what identifies its content."""

    name: str
    size_bytes: int
    modified_at: datetime
    sha256: str

    def describe(self) -> str:
        return (f"{self.name}, {self.size_bytes / 1e6:,.1f} MB, modified {self.modified_at:%Y-%m-%d %H:%M:%S} UTC, "
                f"sha256 {self.sha256}")

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "modified_at": self.modified_at.isoformat()}


def describe_file(name: str, local: str | Path) -> SourceFile:
    """Size, modification time and SHA-256 of the local file a run reads (for an s3:// source, its copy)."""
    path = Path(local)
    with path.open("rb") as fh:
        sha = hashlib.file_digest(fh, "sha256").hexdigest()
    st = path.stat()
    return SourceFile(name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), sha)


@dataclass(frozen=True)
class RecordedRun:
    run_id: str
    source: str
    sha256: str
    recorded_at: datetime

    def describe(self) -> str:
        return (f"run {self.run_id} at {self.recorded_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC from "
                f"{self.source} (sha256 {self.sha256[:16]}…)")


def target_of(pg: psycopg.Connection) -> str:
    info = pg.info
    return f"{info.host}:{info.port}/{info.dbname}"


def _ready(pg: psycopg.Connection) -> bool:
    return pg.execute(read_sql("migration/select_sources_table_exists.sql")).fetchone()[0]


def record_source(pg: psycopg.Connection, run_id: str, source: SourceFile, *, dry_run: bool, mode: str) -> bool:
    """Record the run's source (replacing a cleared prepare's record); False where the ops schema is missing
    (a dry run before the first migration: nothing may be written)."""
    if not _ready(pg):
        return False
    pg.execute(read_sql("migration/upsert_migration_source.sql"), (
        run_id, source.name, source.size_bytes, source.modified_at, source.sha256, dry_run, target_of(pg), mode))
    return True


def previous_run(pg: psycopg.Connection, run_id: str) -> RecordedRun | None:
    """The latest run before ``run_id`` that wrote this database (dry runs write nothing: left out)."""
    if not _ready(pg):
        return None
    row = pg.execute(read_sql("migration/select_previous_run.sql"), (run_id,)).fetchone()
    return RecordedRun(*row) if row else None


def runs(pg: psycopg.Connection, run_ids: list[str]) -> dict[str, RecordedRun]:
    if not run_ids or not _ready(pg):
        return {}
    return {r[0]: RecordedRun(*r) for r in pg.execute(read_sql("migration/select_recorded_runs.sql"), (run_ids,))}


def record_merged_keys(pg: psycopg.Connection, table: Table, staged: sql.Identifier, run_id: str) -> None:
    """The run that wrote each key of a merged table's load (in the load's transaction)."""
    key = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in table.key)
    pg.execute(sql.SQL(read_sql("migration/upsert_merged_keys.sql")).format(key=key, staged=staged),
               (table.name, run_id))


def writers(pg: psycopg.Connection, table: Table, keys: list[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """The run that last wrote each of ``keys`` of a merged table (keys no run recorded are left out)."""
    wanted = set(keys)
    if not wanted:
        return {}
    found = pg.execute(read_sql("migration/select_merged_key_writers.sql"),
                       (table.name, sorted({k[0] for k in wanted})))
    return {tuple(k): run_id for k, run_id in found if tuple(k) in wanted}

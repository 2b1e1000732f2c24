"""What each step of the backup and restore DAGs hands to the next (through XCom, as these classes).

Import-light on purpose: the DAG files import the operators, which name these classes, at parse time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from quantdbops.results import XComResult


@dataclass(frozen=True)
class BackupPlan(XComResult):
    """What preflight found and named: the database, the backup's keys, versions, free disk, the run's choices."""

    dbname: str
    name: str
    taken_at: str
    bucket: str
    s3_key: str
    manifest_key: str
    latest_key: str
    local_copy: str | None
    db_size_bytes: int
    free_bytes: dict[str, int]
    pg_version: str
    tsdb_version: str | None
    pg_dump_major: int
    journal: bool
    encryption: dict[str, str | None]
    dry_run: bool = False
    verify: bool = True


@dataclass(frozen=True)
class UploadedBackup(XComResult):
    """A dump in the bucket with its manifest beside it (and ``latest`` moved where nothing verifies it)."""

    dbname: str
    name: str
    bucket: str
    s3_key: str
    manifest_key: str
    latest_key: str
    backup_id: int | None
    size_bytes: int
    sha256: str
    dump_seconds: float
    parts: int
    encryption: dict[str, str | None]
    tables: int
    views: int
    rows: int
    latest_moved: bool
    local_copy: str | None = None  # where keep_local_copy wrote the dump on the worker that took it

    @property
    def mb_per_s(self) -> float:
        return self.size_bytes / 1e6 / max(self.dump_seconds, 1e-9)


@dataclass(frozen=True)
class Verification(XComResult):
    """The verification restore equal to the manifest: how it compared, how long it took."""

    s3_key: str
    scratch_db: str
    seconds: float
    relations: int
    compared: str
    rows: int
    verified: bool = True
    latest_moved: bool = True


@dataclass(frozen=True)
class RetentionOutcome(XComResult):
    """What retention deleted (or would delete) and what it kept, with why."""

    dry_run: bool
    deleted: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    deleted_s3_keys: list[str] = field(default_factory=list)
    deleted_local_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RestorePlan(XComResult):
    """The dump to restore (in the bucket or a local file) with its manifest, and the target database."""

    source: str  # "s3" or "local"
    dump: str
    manifest: dict[str, Any]
    bucket: str | None = None
    target: str = ""
    target_exists: bool = False

    def into(self, target: str, exists: bool) -> RestorePlan:
        return dataclasses.replace(self, target=target, target_exists=exists)


@dataclass(frozen=True)
class DumpProof(XComResult):
    """The dump's bytes read through once: size and SHA-256 equal to the manifest's."""

    dump: str
    size_bytes: int
    sha256: str
    seconds: float


@dataclass(frozen=True)
class SafetyBackup(XComResult):
    """The existing target, dumped into the bucket before it was replaced."""

    s3_key: str
    size_bytes: int
    sha256: str
    local_copy: str | None
    encryption: dict[str, str | None]


@dataclass(frozen=True)
class RestoreOutcome(XComResult):
    """The restored database checked against the manifest: one line per relation, and the verdict."""

    database: str
    seconds: float
    timescaledb: bool
    relations: int
    rows: int
    ok: bool
    problems: list[str]
    lines: list[list[str]]
    summary: str
    advice: str


@dataclass(frozen=True)
class BackupSummary(XComResult):
    """The run in one line: what the report logs."""

    dry_run: bool
    size_bytes: int = 0
    seconds: float = 0.0
    mb_per_s: float | None = None
    sha256: str | None = None
    s3_key: str | None = None
    verified: bool = False
    encryption: str | None = None
    deleted: int = 0


__all__ = [
    "BackupPlan", "BackupSummary", "DumpProof", "RestoreOutcome", "RestorePlan", "RetentionOutcome", "SafetyBackup",
    "UploadedBackup", "Verification",
]

"""Where a backup lives and when it was taken: everything is derived from one name.

A backup of database ``quant_platform`` taken at 2025-10-17 02:00 Asia/Seoul is named
``quant_platform_20251017T020000``; its dump is ``<prefix>/quant_platform/2025/10/17/<name>.dump`` in the
bucket with ``<name>.manifest.json`` beside it, and ``<local_dir>/quant_platform/<name>.dump`` on disk.
The "latest" marker is ``<prefix>/quant_platform/latest.json``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from quantdbops import PLATFORM_TZ

DEFAULT_BUCKET = "quant-db-backups"
BUCKET_VARIABLE = "quant_backup_bucket"
DEFAULT_PREFIX = "backups"
DUMP_SUFFIX = ".dump"
MANIFEST_SUFFIX = ".manifest.json"
LATEST_NAME = "latest.json"
STAMP_FORMAT = "%Y%m%dT%H%M%S"
DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_NAME_RE = re.compile(r"^(?P<db>[a-z_][a-z0-9_]*)_(?P<stamp>\d{8}T\d{6})$")
TZ = ZoneInfo(PLATFORM_TZ)


def check_db_name(name: str) -> str:
    """A database name we are willing to put in a command or an identifier (lower-case, <= 63 chars)."""
    if not DB_NAME_RE.match(name or ""):
        raise ValueError(f"{name!r} is not an accepted database name (lower-case letters, digits, _; <= 63)")
    return name


def default_local_dir() -> Path:
    """``$QUANT_BACKUP_DIR``, else ``$AIRFLOW_HOME/backups``, else ``/tmp/quant-db-backups``."""
    if os.environ.get("QUANT_BACKUP_DIR"):
        return Path(os.environ["QUANT_BACKUP_DIR"])
    if os.environ.get("AIRFLOW_HOME"):
        return Path(os.environ["AIRFLOW_HOME"]) / "backups"
    return Path("/tmp/quant-db-backups")


WORK_DIR_ENV = "QUANT_BACKUP_WORK_DIR"


def default_work_dir() -> Path | None:
    """Where verify and restore keep a fetched dump while they restore it: ``$QUANT_BACKUP_WORK_DIR``, else
    None (the worker's temp dir)."""
    return Path(os.environ[WORK_DIR_ENV]) if os.environ.get(WORK_DIR_ENV) else None


@dataclass(frozen=True)
class BackupName:
    """One backup's identity: database and time taken (Asia/Seoul, second resolution)."""

    dbname: str
    taken_at: datetime

    @classmethod
    def at(cls, dbname: str, when: datetime) -> BackupName:
        when = when.astimezone(TZ) if when.tzinfo else when.replace(tzinfo=TZ)
        return cls(check_db_name(dbname), when.replace(microsecond=0))

    @classmethod
    def parse(cls, text: str) -> BackupName | None:
        """The name in a key or path (``.../quant_platform_20251017T020000.dump``), None if there is none."""
        stem = text.rsplit("/", 1)[-1]
        for suffix in (DUMP_SUFFIX, MANIFEST_SUFFIX):
            stem = stem.removesuffix(suffix)
        m = _NAME_RE.match(stem)
        if not m:
            return None
        return cls(m["db"], datetime.strptime(m["stamp"], STAMP_FORMAT).replace(tzinfo=TZ))

    @property
    def stem(self) -> str:
        return f"{self.dbname}_{self.taken_at.strftime(STAMP_FORMAT)}"

    def folder(self, prefix: str = DEFAULT_PREFIX) -> str:
        return f"{prefix}/{self.dbname}/{self.taken_at:%Y/%m/%d}"

    def dump_key(self, prefix: str = DEFAULT_PREFIX) -> str:
        return f"{self.folder(prefix)}/{self.stem}{DUMP_SUFFIX}"

    def manifest_key(self, prefix: str = DEFAULT_PREFIX) -> str:
        return f"{self.folder(prefix)}/{self.stem}{MANIFEST_SUFFIX}"

    def local_dump(self, local_dir: Path | str) -> Path:
        return Path(local_dir) / self.dbname / f"{self.stem}{DUMP_SUFFIX}"

    def local_manifest(self, local_dir: Path | str) -> Path:
        return Path(local_dir) / self.dbname / f"{self.stem}{MANIFEST_SUFFIX}"


def latest_key(dbname: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/{check_db_name(dbname)}/{LATEST_NAME}"


def manifest_key_for(dump_key: str) -> str:
    """The manifest beside a dump key or path."""
    if not dump_key.endswith(DUMP_SUFFIX):
        raise ValueError(f"{dump_key!r} is not a dump (it must end in {DUMP_SUFFIX})")
    return dump_key.removesuffix(DUMP_SUFFIX) + MANIFEST_SUFFIX

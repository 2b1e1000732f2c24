"""The knobs of a backup or restore run, from the DAG params (and defaults that need no I/O at parse time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantdbops import CONN_POSTGRES, CONN_S3
from quantdbops.backup.naming import DEFAULT_BUCKET, DEFAULT_PREFIX, default_local_dir
from quantdbops.backup.store import RetryPolicy


@dataclass(frozen=True)
class BackupSettings:
    """Where backups go and how long they stay; one object the steps share."""

    bucket: str = DEFAULT_BUCKET
    prefix: str = DEFAULT_PREFIX
    local_dir: Path = field(default_factory=default_local_dir)
    bin_dir: str | None = None
    retention_days: int = 30
    keep_verified: int = 7
    verify: bool = True
    dry_run: bool = False
    postgres_conn_id: str = CONN_POSTGRES
    aws_conn_id: str = CONN_S3
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    transfer: dict[str, Any] = field(default_factory=dict)
    restore_jobs: int = 1
    disk_headroom: float = 1.0  # free disk must be >= database size x this

    def __post_init__(self) -> None:
        if self.retention_days < 1 or self.keep_verified < 1:
            raise ValueError("retention_days and keep_verified must be >= 1")
        if not self.bucket or "/" in self.bucket:
            raise ValueError(f"bad bucket name {self.bucket!r}")


def resolve_bucket(param: str | None) -> str:
    """The bucket param, else the Airflow Variable ``quant_backup_bucket``, else ``quant-db-backups``.

    Only called inside a running task: Variables are never read at parse time.
    """
    if param:
        return param
    from airflow.sdk import Variable

    from quantdbops.backup.naming import BUCKET_VARIABLE

    return Variable.get(BUCKET_VARIABLE, default=DEFAULT_BUCKET)

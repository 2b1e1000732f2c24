"""The knobs of a backup or restore run: the run's request resolved against Airflow (the bucket Variable, the S3
connection's encryption default) and the step's own configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantdbops import CONN_POSTGRES, CONN_S3
from quantdbops.backup.naming import DEFAULT_BUCKET, DEFAULT_PREFIX, default_local_dir, default_work_dir
from quantdbops.backup.params import BackupRequest, StorageRequest
from quantdbops.backup.store import RetryPolicy
from quantdbops.backup.stream import Encryption


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
    restore_jobs: int = 1
    disk_headroom: float = 1.0  # free disk must be >= database size x this
    # Server-side encryption of every object a backup writes (dump, manifest, latest), checked on the object.
    encryption: Encryption = field(default_factory=Encryption)
    keep_local_copy: bool = False  # also write the dump under local_dir (never read by another task)
    part_size: int = 0  # multipart part size in bytes; 0: from the database's size (16 MB at least)
    work_dir: Path | None = None  # where verify and restore keep the fetched dump; None: the worker's temp dir

    def __post_init__(self) -> None:
        if self.retention_days < 1 or self.keep_verified < 1:
            raise ValueError("retention_days and keep_verified must be >= 1")
        if not self.bucket or "/" in self.bucket:
            raise ValueError(f"bad bucket name {self.bucket!r}")

    @classmethod
    def resolve(cls, request: StorageRequest, *, postgres_conn_id: str = CONN_POSTGRES, aws_conn_id: str = CONN_S3,
                bin_dir: str | None = None, retry: RetryPolicy | None = None, part_size: int = 0) -> BackupSettings:
        """A run's settings: its request, with the bucket and the encryption it leaves empty resolved (reads an
        Airflow Variable and connection: only inside a running task)."""
        run = request if isinstance(request, BackupRequest) else BackupRequest()
        return cls(
            bucket=resolve_bucket(request.bucket), local_dir=Path(request.local_dir or default_local_dir()),
            bin_dir=bin_dir, retention_days=run.retention_days, keep_verified=run.keep_verified,
            verify=run.verify, dry_run=run.dry_run, postgres_conn_id=postgres_conn_id, aws_conn_id=aws_conn_id,
            retry=retry or RetryPolicy(),
            encryption=resolve_encryption(request.server_side_encryption, request.kms_key_id,
                                          connection_extra(aws_conn_id)),
            keep_local_copy=request.keep_local_copy, part_size=part_size, work_dir=default_work_dir())


ENCRYPTION_EXTRA = "server_side_encryption"  # in the quant_s3 connection's extra: AES256, aws:kms or none
KMS_KEY_EXTRA = "sse_kms_key_id"


def resolve_encryption(param: str | None, kms_key_id: str | None, extra: dict[str, Any]) -> Encryption:
    """The run's param, else the S3 connection's extra, else AES256 (S3-managed keys): encryption is on unless
    someone says ``none``."""
    chosen = param or extra.get(ENCRYPTION_EXTRA) or "AES256"
    key = kms_key_id or extra.get(KMS_KEY_EXTRA) or None
    algorithm = None if str(chosen).lower() == "none" else str(chosen)
    return Encryption(algorithm, key if algorithm == "aws:kms" else None)


def connection_extra(conn_id: str) -> dict[str, Any]:
    """An Airflow connection's extra (the S3 one may set the default encryption); {} without the connection."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id).extra_dejson
    except AirflowNotFoundException:
        return {}


def resolve_bucket(param: str | None) -> str:
    """The bucket param, else the Airflow Variable ``quant_backup_bucket``, else ``quant-db-backups``.

    Only called inside a running task: Variables are never read at parse time.
    """
    if param:
        return param
    from airflow.sdk import Variable

    from quantdbops.backup.naming import BUCKET_VARIABLE

    return Variable.get(BUCKET_VARIABLE, default=DEFAULT_BUCKET)

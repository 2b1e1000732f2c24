"""The backup and restore DAGs' params: JSON schema for the trigger form (built without any I/O), and their
strict reading in tasks into one typed request per DAG."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quantdbops.backup.naming import DB_NAME_RE, check_db_name
from quantdbops.paramcheck import ParamError

_BUCKET = {"type": ["null", "string"], "pattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", "title": "Bucket",
           "description": "Empty: the Airflow Variable quant_backup_bucket, else quant-db-backups."}
_LOCAL_DIR = {"type": ["null", "string"], "pattern": "^/.+", "title": "Local backup directory",
              "description": "Absolute path on the workers for kept local copies (keep_local_copy); empty: "
                             "$QUANT_BACKUP_DIR, else $AIRFLOW_HOME/backups."}


def _storage_params() -> dict[str, Any]:
    """Encryption at rest and the optional local copy, shared by the backup and the restore's safety backup."""
    from airflow.sdk import Param

    return {
        "server_side_encryption": Param(None, type=["null", "string"], enum=[None, "AES256", "aws:kms", "none"],
                                        title="Server-side encryption",
                                        description="Empty: the quant_s3 connection's extra server_side_encryption, "
                                                    "else AES256. aws:kms uses kms_key_id (or the account's key)."),
        "kms_key_id": Param(None, type=["null", "string"], title="KMS key id",
                            description="With aws:kms: the key (id or ARN); empty: the connection's extra "
                                        "sse_kms_key_id, else the account's default key."),
        "keep_local_copy": Param(False, type="boolean", title="Keep a local copy",
                                 description="Also write the dump under local_dir on the worker that takes it "
                                             "(retention deletes old ones). Never needed by another task."),
    }


def backup_params() -> dict[str, Any]:
    from airflow.sdk import Param

    return {
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Plan and report (pre-flight, names, what retention would delete); write "
                                     "nothing. The nightly schedule runs with false."),
        "verify": Param(True, type="boolean", title="Verification restore",
                        description="Restore the new dump into a scratch database and compare row counts."),
        "retention_days": Param(30, type="integer", minimum=1, maximum=3650, title="Retention (days)"),
        "keep_verified": Param(7, type="integer", minimum=1, maximum=365, title="Always keep newest verified",
                               description="The newest N verified backups are never deleted, whatever their age."),
        "bucket": Param(None, **_BUCKET),
        "local_dir": Param(None, **_LOCAL_DIR),
        **_storage_params(),
    }


def restore_params() -> dict[str, Any]:
    from airflow.sdk import Param

    name = DB_NAME_RE.pattern
    return {
        "backup": Param("latest", type="string", minLength=1, title="Backup",
                        pattern=r"^(latest|/.+\.dump|(s3://[^/]+/)?[A-Za-z0-9_./-]+\.dump)$",
                        description="latest, a dump key (backups/<db>/YYYY/MM/DD/<db>_YYYYmmddTHHMMSS.dump, or "
                                    "s3://bucket/key) or an absolute local path of a .dump with its manifest."),
        "target_database": Param("quant_platform_restore", type="string", pattern=name, title="Target database",
                                 description="Database to restore into (created; replaced if it exists)."),
        "confirm_target": Param("", type="string", title="Confirm target",
                                description="Required when the target exists: type its name again. It is "
                                            "replaced after a safety backup."),
        "source_database": Param(None, type=["null", "string"], pattern=name, title="Source database",
                                 description="Whose 'latest' to use; empty: the quant_postgres connection's."),
        "bucket": Param(None, **_BUCKET),
        "local_dir": Param(None, **_LOCAL_DIR),
        **_storage_params(),
    }


def _flag(params: Mapping[str, Any], name: str, default: bool) -> bool:
    value = params.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ParamError(f"{name} must be true or false, got {value!r}")
    return value


def _count(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ParamError(f"{name} must be text, got {value!r}")
    return value.strip()


@dataclass(frozen=True)
class StorageRequest:
    """Where the objects go and how they are kept: shared by the backup and the restore's safety backup.

    Empty values are resolved when a step runs (the bucket from a Variable, encryption from the S3
    connection's extra: ``BackupSettings.resolve``)."""

    bucket: str | None = None
    local_dir: str | None = None
    server_side_encryption: str | None = None
    kms_key_id: str | None = None
    keep_local_copy: bool = False

    @staticmethod
    def storage_of(params: Mapping[str, Any]) -> dict[str, Any]:
        bucket = _text(params, "bucket")
        if bucket is not None and "/" in bucket:
            raise ParamError(f"bucket must be a bucket name without '/', got {bucket!r}")
        local_dir = _text(params, "local_dir")
        if local_dir is not None and not local_dir.startswith("/"):
            raise ParamError(f"local_dir must be an absolute path, got {local_dir!r}")
        return {"bucket": bucket, "local_dir": local_dir,
                "server_side_encryption": _text(params, "server_side_encryption"),
                "kms_key_id": _text(params, "kms_key_id"),
                "keep_local_copy": _flag(params, "keep_local_copy", False)}


@dataclass(frozen=True)
class BackupRequest(StorageRequest):
    """What a run of the nightly backup was asked to do, checked."""

    dry_run: bool = False
    verify: bool = True
    retention_days: int = 30
    keep_verified: int = 7

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> BackupRequest:
        p = context["params"]
        return cls(**cls.storage_of(p), dry_run=_flag(p, "dry_run", False), verify=_flag(p, "verify", True),
                   retention_days=_count(p, "retention_days", 30), keep_verified=_count(p, "keep_verified", 7))


@dataclass(frozen=True)
class RestoreRequest(StorageRequest):
    """Which backup to restore into which database, checked (an existing target needs its name repeated)."""

    backup: str = "latest"
    target_database: str = ""
    confirm_target: str = ""
    source_database: str | None = None

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> RestoreRequest:
        p = context["params"]
        try:
            target = check_db_name(p.get("target_database") or "")
            source = _text(p, "source_database")
            if source is not None:
                check_db_name(source)
        except ValueError as exc:
            raise ParamError(str(exc)) from exc
        return cls(**cls.storage_of(p), backup=_text(p, "backup") or "latest", target_database=target,
                   confirm_target=_text(p, "confirm_target") or "", source_database=source)


__all__ = ["BackupRequest", "RestoreRequest", "StorageRequest", "backup_params", "restore_params"]

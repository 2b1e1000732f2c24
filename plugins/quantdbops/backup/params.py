"""Trigger-form params of the backup and restore DAGs (JSON schema; built without any I/O)."""

from __future__ import annotations

from typing import Any

from quantdbops.backup.naming import DB_NAME_RE

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

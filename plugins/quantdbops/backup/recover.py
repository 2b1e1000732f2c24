"""The restore DAG's steps: find the backup, prove its bytes, save the target, restore, check.

Nothing touches the target database before the downloaded dump's SHA-256 and size equal the manifest's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from quantdbops.backup import manifest as mf
from quantdbops.backup import store
from quantdbops.backup.dump import check_client_compatible, run_pg_dump, sha256_file
from quantdbops.backup.naming import (
    DUMP_SUFFIX,
    BackupName,
    check_db_name,
    latest_key,
    manifest_key_for,
)
from quantdbops.backup.restore import database_exists, drop_database, restore_and_check
from quantdbops.backup.settings import BackupSettings
from quantdbops.io.pg import connect

log = logging.getLogger(__name__)
Say = Callable[..., None]


class RestoreRefused(RuntimeError):
    """The restore will not go ahead (bad choice of backup, missing confirmation, checksum mismatch)."""


def resolve(hook: Any, s: BackupSettings, backup: str, source_db: str) -> dict[str, Any]:
    """``latest``, a dump key in the bucket (``s3://bucket/key`` or ``key``) or an absolute local path."""
    backup = (backup or "").strip()
    if backup == "latest":
        pointer = store.get_json(hook, s.bucket, latest_key(source_db, s.prefix), s.retry)
        if not pointer:
            raise RestoreRefused(f"no latest marker at s3://{s.bucket}/{latest_key(source_db, s.prefix)}: name a "
                                 "backup key instead")
        backup = pointer["s3_key"]
    if backup.startswith("/"):
        path = Path(backup)
        if not path.is_file() or not backup.endswith(DUMP_SUFFIX):
            raise RestoreRefused(f"{backup} is not a dump file on this worker")
        manifest_path = Path(manifest_key_for(backup))
        if not manifest_path.is_file():
            raise RestoreRefused(f"{manifest_path} is missing: without the manifest the checksum cannot be proven")
        return {"source": "local", "dump": backup, "manifest": mf.read(manifest_path)}
    bucket = s.bucket
    if backup.startswith("s3://"):
        bucket, _, backup = backup.removeprefix("s3://").partition("/")
    if not backup.endswith(DUMP_SUFFIX) or BackupName.parse(backup) is None:
        raise RestoreRefused(f"{backup!r} is not a backup dump key (…/<db>_YYYYmmddTHHMMSS{DUMP_SUFFIX})")
    manifest = store.get_json(hook, bucket, manifest_key_for(backup), s.retry)
    if manifest is None:
        raise RestoreRefused(f"s3://{bucket}/{manifest_key_for(backup)} is missing: an upload without a manifest "
                             "was never confirmed; choose another backup")
    return {"source": "s3", "bucket": bucket, "dump": backup, "manifest": manifest}


def check_target(conn_kwargs: dict[str, object], target: str, confirm: str | None) -> bool:
    """True if ``target`` exists, in which case ``confirm`` must repeat its name exactly."""
    check_db_name(target)
    exists = database_exists(conn_kwargs, target)
    if exists and (confirm or "") != target:
        raise RestoreRefused(f"database {target!r} exists and would be replaced: trigger again with "
                             f"confirm_target = {target!r} (a safety backup of it is taken first)")
    return exists


def fetch(hook: Any, s: BackupSettings, resolved: dict[str, Any], *, say: Say = log.info) -> dict[str, Any]:
    """Download (S3) and check size and SHA-256 against the manifest; refuse on any difference."""
    manifest = resolved["manifest"]
    if resolved["source"] == "local":
        path = Path(resolved["dump"])
    else:
        name = BackupName.parse(resolved["dump"])
        assert name is not None
        path = Path(s.local_dir) / "restore" / f"{name.stem}{DUMP_SUFFIX}"
        path.parent.mkdir(parents=True, exist_ok=True)
        say("Downloading s3://%s/%s to %s", resolved["bucket"], resolved["dump"], path)
        store.download(hook, resolved["bucket"], resolved["dump"], str(path), s.retry)
    size, sha = sha256_file(path)
    if (size, sha) != (manifest["size_bytes"], manifest["sha256"]):
        if resolved["source"] == "s3":
            path.unlink(missing_ok=True)
        raise RestoreRefused(f"checksum mismatch for {resolved['dump']}: {size:,} bytes sha256 {sha}, manifest says "
                             f"{manifest['size_bytes']:,} bytes sha256 {manifest['sha256']}. The backup is corrupt; "
                             "the target was not touched. Choose another backup.")
    if not manifest.get("verified"):
        say("WARNING: this backup's manifest says it was never verified by a restore")
    return {"local_path": str(path), "size_bytes": size, "sha256": sha}


def safety_backup(conn_kwargs: dict[str, object], hook: Any | None, s: BackupSettings, target: str, *,
                  say: Say = log.info) -> dict[str, Any]:
    """Dump the existing target before it is replaced, keep it on disk and (with a hook) in the bucket."""
    with connect({**conn_kwargs, "dbname": target}, autocommit=True) as c:
        server = str(c.execute("SHOW server_version").fetchone()[0]).split()[0]
    check_client_compatible(server, s.bin_dir)
    name = BackupName.at(target, datetime.now())
    path = Path(s.local_dir) / "safety" / f"{name.stem}{DUMP_SUFFIX}"
    result = run_pg_dump({**conn_kwargs, "dbname": target}, path, bin_dir=s.bin_dir)
    out = {"local_path": result.path, "size_bytes": result.size_bytes, "sha256": result.sha256, "s3_key": None}
    if hook is not None:
        key = f"{s.prefix}/{target}/safety/{name.stem}{DUMP_SUFFIX}"
        store.upload_dump(hook, s.bucket, result.path, key, size_bytes=result.size_bytes, sha256=result.sha256,
                          policy=s.retry)
        out["s3_key"] = key
    say("Safety backup of %s: %s (%s bytes, sha256 %s)", target, out["s3_key"] or path, result.size_bytes,
        result.sha256)
    return out


def restore(conn_kwargs: dict[str, object], s: BackupSettings, target: str, dump_path: str,
            manifest: dict[str, Any], *, say: Say = log.info) -> dict[str, Any]:
    """Replace ``target`` with the dump, then check it against the manifest."""
    drop_database(conn_kwargs, target)
    result = restore_and_check(conn_kwargs, target, dump_path, manifest, bin_dir=s.bin_dir, jobs=s.restore_jobs,
                               say=say)
    return {**result.as_dict(), "lines": result.comparison.lines, "summary": result.comparison.summary(),
            "advice": result.comparison.advice()}

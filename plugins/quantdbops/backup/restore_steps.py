"""The restore DAG's steps: find the backup, prove its bytes, save the target, restore, check.

Nothing touches the target database before the dump's SHA-256 and size equal the manifest's: ``check`` reads
the object through once (hashing, nothing kept), and ``restore`` fetches it again into its own temp dir,
proves it again and only then replaces the target, so no step depends on a file another step left on a
worker's disk. The safety backup of an existing target streams into the bucket like the nightly dump.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from quantdbops.backup import manifest as mf
from quantdbops.backup import store
from quantdbops.backup.databases import database_exists, drop_database, restore_and_check
from quantdbops.backup.dump import DumpProcess, check_client_compatible, sha256_file
from quantdbops.backup.naming import (
    DUMP_SUFFIX,
    BackupName,
    check_db_name,
    latest_key,
    manifest_key_for,
)
from quantdbops.backup.nightly_steps import fetched, local_copy
from quantdbops.backup.results import DumpProof, RestoreOutcome, RestorePlan, SafetyBackup
from quantdbops.backup.settings import BackupSettings
from quantdbops.backup.stream import ObjectMismatch, download, upload_stream
from quantdbops.io.pg import PgTarget
from quantdbops.io.pg import TargetLike as Target

log = logging.getLogger(__name__)
Say = Callable[..., None]


class RestoreRefused(RuntimeError):
    """The restore will not go ahead (bad choice of backup, missing confirmation, checksum mismatch)."""


def resolve(hook: Any, s: BackupSettings, backup: str, source_db: str) -> RestorePlan:
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
        return RestorePlan(source="local", dump=backup, manifest=mf.read(manifest_path))
    bucket = s.bucket
    if backup.startswith("s3://"):
        bucket, _, backup = backup.removeprefix("s3://").partition("/")
    if not backup.endswith(DUMP_SUFFIX) or BackupName.parse(backup) is None:
        raise RestoreRefused(f"{backup!r} is not a backup dump key (…/<db>_YYYYmmddTHHMMSS{DUMP_SUFFIX})")
    manifest = store.get_json(hook, bucket, manifest_key_for(backup), s.retry)
    if manifest is None:
        raise RestoreRefused(f"s3://{bucket}/{manifest_key_for(backup)} is missing: an upload without a manifest "
                             "was never confirmed; choose another backup")
    return RestorePlan(source="s3", dump=backup, manifest=manifest, bucket=bucket)


def check_target(target: Target, name: str, confirm: str | None) -> bool:
    """True if database ``name`` exists, in which case ``confirm`` must repeat its name exactly."""
    check_db_name(name)
    exists = database_exists(target, name)
    if exists and (confirm or "") != name:
        raise RestoreRefused(f"database {name!r} exists and would be replaced: trigger again with "
                             f"confirm_target = {name!r} (a safety backup of it is taken first)")
    return exists


def _refuse_mismatch(resolved: RestorePlan, exc: Exception) -> RestoreRefused:
    return RestoreRefused(f"checksum mismatch for {resolved.dump}: {exc}. The backup is corrupt; the target was "
                          "not touched. Choose another backup.")


def check(hook: Any, s: BackupSettings, resolved: RestorePlan, *, say: Say = log.info) -> DumpProof:
    """Read the dump through once and compare size and SHA-256 with the manifest; keep nothing."""
    manifest = resolved.manifest
    if resolved.source == "local":
        size, sha = sha256_file(resolved.dump)
        if (size, sha) != (manifest["size_bytes"], manifest["sha256"]):
            raise _refuse_mismatch(resolved, ValueError(f"{size:,} bytes with sha256 {sha}, the manifest says "
                                                        f"{manifest['size_bytes']:,} bytes with {manifest['sha256']}"))
        seconds = 0.0
    else:
        try:
            got = download(hook, resolved.bucket, resolved.dump, None, expect_size=manifest["size_bytes"],
                           expect_sha256=manifest["sha256"], policy=s.retry, say=say)
        except ObjectMismatch as exc:
            raise _refuse_mismatch(resolved, exc) from exc
        size, sha, seconds = got.size_bytes, got.sha256, got.seconds
    if not manifest.get("verified"):
        say("WARNING: this backup's manifest says it was never verified by a restore")
    return DumpProof(dump=resolved.dump, size_bytes=size, sha256=sha, seconds=seconds)


def safety_backup(target: Target, hook: Any, s: BackupSettings, name: str, *, say: Say = log.info) -> SafetyBackup:
    """Stream a dump of the existing database ``name`` into the bucket before it is replaced (and to a local
    copy where ``keep_local_copy`` asks for one)."""
    into = PgTarget.of(target).on(name)
    with into.connect(autocommit=True) as c:
        server = str(c.execute("SHOW server_version").fetchone()[0]).split()[0]
    check_client_compatible(server, s.bin_dir)
    stamp = BackupName.at(name, datetime.now())
    key = f"{s.prefix}/{name}/safety/{stamp.stem}{DUMP_SUFFIX}"
    local = str(Path(s.local_dir) / "safety" / f"{stamp.stem}{DUMP_SUFFIX}") if s.keep_local_copy else None
    proc = DumpProcess(into.args(), bin_dir=s.bin_dir)
    try:
        with local_copy(local) as tee:
            sent, _ = upload_stream(hook, s.bucket, key, proc.read, encryption=s.encryption, policy=s.retry,
                                    tee=tee, finish=proc.finish, say=say)
    except BaseException:
        proc.kill()
        raise
    say("Safety backup of %s: s3://%s/%s (%s bytes, sha256 %s)%s", name, s.bucket, key, f"{sent.size_bytes:,}",
        sent.sha256, f", local copy {local}" if local else "")
    return SafetyBackup(s3_key=key, size_bytes=sent.size_bytes, sha256=sent.sha256, local_copy=local,
                        encryption=sent.encryption)


@contextlib.contextmanager
def _dump_file(hook: Any, s: BackupSettings, resolved: RestorePlan, say: Say) -> Iterator[Path]:
    if resolved.source == "local":
        yield Path(resolved.dump)
        return
    try:
        with fetched(hook, resolved.bucket, resolved.dump, resolved.manifest, s, say) as path:
            yield path
    except ObjectMismatch as exc:
        raise _refuse_mismatch(resolved, exc) from exc


def restore(target: Target, hook: Any, s: BackupSettings, name: str, resolved: RestorePlan, *,
            say: Say = log.info) -> RestoreOutcome:
    """Fetch and prove the dump, then replace database ``name`` with it and check it against the manifest."""
    manifest = resolved.manifest
    with _dump_file(hook, s, resolved, say) as path:
        if resolved.source == "local":  # a file on this worker: prove it here as well
            check(hook, s, resolved, say=say)
        drop_database(target, name)
        result = restore_and_check(target, name, path, manifest, bin_dir=s.bin_dir, jobs=s.restore_jobs, say=say)
    c = result.comparison
    return RestoreOutcome(database=result.dbname, seconds=round(result.seconds, 3), timescaledb=result.timescaledb,
                          relations=c.relations, rows=c.rows, ok=c.ok, problems=list(c.problems),
                          lines=[list(line) for line in c.lines], summary=c.summary(), advice=c.advice())

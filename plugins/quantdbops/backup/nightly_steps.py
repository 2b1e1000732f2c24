"""The nightly backup's steps as plain functions (the operators call them; the tests call them too).

preflight -> dump -> verify -> retention. No step hands a file on local disk to another: ``dump`` streams
``pg_dump`` straight into the bucket (``backup.stream``: multipart, SHA-256 on the way, server-side
encryption) and writes the manifest beside the object; ``verify`` fetches the object itself from the bucket
(proving the object, not a copy), checks its SHA-256 against the manifest and restores it into a scratch
database. So any worker can run any step. Each step takes a ``PgTarget`` (or libpq keyword arguments), an
``S3Hook`` where it needs the bucket, and ``BackupSettings``; each returns metadata only (keys, sizes,
checksums, counts) as a typed result, ready for XCom.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import psycopg

from quantdbops.backup import journal, store
from quantdbops.backup import manifest as mf
from quantdbops.backup.databases import drop_database, restore_and_check
from quantdbops.backup.dump import DumpProcess, check_client_compatible
from quantdbops.backup.naming import BackupName, latest_key
from quantdbops.backup.results import BackupPlan, RetentionOutcome, UploadedBackup, Verification
from quantdbops.backup.retention import Candidate, RetentionPlan, plan
from quantdbops.backup.settings import BackupSettings
from quantdbops.backup.stream import download, part_size_for, upload_stream
from quantdbops.io.pg import PgTarget
from quantdbops.io.pg import TargetLike as Target
from quantdbops.sqlfiles import read_sql

log = logging.getLogger(__name__)
Say = Callable[..., None]


class PreflightError(RuntimeError):
    """A pre-flight check failed: nothing was written."""


class DiskShortage(PreflightError):
    """This worker lacks the disk a step needs (a retry on the same worker will not find more)."""


class VerificationError(RuntimeError):
    """The verification restore did not match the manifest; ``advice`` says what the differences point at."""

    def __init__(self, message: str, advice: str = "") -> None:
        super().__init__(message)
        self.advice = advice


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def work_dir(s: BackupSettings) -> Path:
    """Where a step keeps the object it fetched while it uses it: the worker's own temp dir by default."""
    return Path(s.work_dir) if s.work_dir else Path(tempfile.gettempdir())


def preflight(target: Target, hook: Any, s: BackupSettings, when: datetime) -> BackupPlan:
    """Database answers, the client fits the server, the bucket answers, and the disk holds what this worker
    needs: nothing for the dump (it streams to the bucket); the dump's size in its temp dir for the
    verification restore, and for a local copy where one is kept.

    A database or bucket that cannot answer as configured (no such database, role or bucket, refused
    credentials) raises ``ActionableFailure`` at once; one that does not answer now, ``PreflightError`` or
    ``BackupStoreError`` for Airflow's retries."""
    t = PgTarget.of(target)
    try:
        with t.connect(autocommit=True) as c:
            row = c.execute(read_sql("backup/select_preflight.sql")).fetchone()
    except psycopg.OperationalError as exc:
        raise PreflightError(f"the database does not answer ({' '.join(str(exc).split())}): a transient failure, "
                             "the task fails normally and Airflow's task retries follow") from exc
    dbname, size, server_version, tsdb_version, has_journal = row
    pg_version = str(server_version).split()[0]
    client = check_client_compatible(pg_version, s.bin_dir)
    needed = int(size * s.disk_headroom)
    places = ([work_dir(s)] if s.verify else []) + ([Path(s.local_dir)] if s.keep_local_copy else [])
    free = {str(p): shutil.disk_usage(_existing_parent(p)).free for p in places}
    for place, left in free.items():
        if left < needed:
            raise DiskShortage(f"{place}: {left / 1e9:.2f} GB free on this worker, the dump may need "
                                 f"{needed / 1e9:.2f} GB (database size {size / 1e9:.2f} GB): free disk, or point "
                                 "work_dir / local_dir elsewhere")
    store.check_bucket(hook, s.bucket, s.retry)
    name = BackupName.at(dbname, when)
    return BackupPlan(
        dbname=dbname, name=name.stem, taken_at=name.taken_at.isoformat(), bucket=s.bucket,
        s3_key=name.dump_key(s.prefix), manifest_key=name.manifest_key(s.prefix),
        latest_key=latest_key(dbname, s.prefix),
        local_copy=str(name.local_dump(s.local_dir)) if s.keep_local_copy else None, db_size_bytes=int(size),
        free_bytes=free, pg_version=pg_version, tsdb_version=tsdb_version, pg_dump_major=client,
        journal=bool(has_journal), encryption=s.encryption.as_dict(), dry_run=s.dry_run, verify=s.verify)


@contextlib.contextmanager
def local_copy(path: str | None) -> Iterator[BinaryIO | None]:
    """The file a kept local copy is written to (renamed into place only when the dump succeeded)."""
    if path is None:
        yield None
        return
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    try:
        with partial.open("wb") as fh:
            yield fh
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)


def dump(target: Target, hook: Any, p: BackupPlan, s: BackupSettings, *, run_id: str,
         say: Say = log.info) -> UploadedBackup:
    """``pg_dump`` in one exported snapshot, streamed into the bucket; the manifest's relations (kinds, table
    rows, views' population) are read in that same snapshot, and the manifest is written beside the object only
    once the object is complete. Without verification, the object is read back (size and SHA-256) and
    ``latest`` moves to it here."""
    t = PgTarget.of(target)
    with t.connect(autocommit=True) as c:
        backup_id = journal.start(c, run_id=run_id, s3_key=p.s3_key, local_path=p.local_copy or "",
                                  pg_version=p.pg_version, tsdb_version=p.tsdb_version)
    try:
        with t.connect() as snap:
            snap.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            snap.read_only = True
            snapshot = snap.execute("SELECT pg_export_snapshot()").fetchone()[0]
            say("Dumping %s (snapshot %s) into s3://%s/%s (server-side encryption %s)%s", p.dbname, snapshot,
                s.bucket, p.s3_key, s.encryption.algorithm or "the bucket's default",
                f", keeping a local copy at {p.local_copy}" if p.local_copy else "")
            proc = DumpProcess(t.args(), bin_dir=s.bin_dir, snapshot=snapshot)
            try:
                with local_copy(p.local_copy) as tee:
                    # pg_dump's exit status is read before the upload completes: a failed dump never
                    # becomes an object
                    sent, (seconds, warnings) = upload_stream(
                        hook, s.bucket, p.s3_key, proc.read, encryption=s.encryption,
                        part_size=s.part_size or part_size_for(p.db_size_bytes), policy=s.retry, tee=tee,
                        finish=proc.finish, say=say)
            except BaseException:
                proc.kill()
                raise
            counts_start = time.perf_counter()
            relations = mf.inventory(snap)
            hyper = mf.hypertables(snap)
            snap.rollback()
        counted = {k: r.rows for k, r in relations.items() if r.kind in mf.COUNTED}
        say("Counted the rows of %d tables in the dump's snapshot in %.1fs (%d views: not counted, their rows "
            "are as old as their last refresh)", len(counted), time.perf_counter() - counts_start,
            len(relations) - len(counted))
        if warnings:
            say("pg_dump said: %s", warnings)
        manifest = mf.build(name=p.name, dbname=p.dbname, s3_key=p.s3_key, bucket=p.bucket,
                            size_bytes=sent.size_bytes, sha256=sent.sha256, pg_version=p.pg_version,
                            tsdb_version=p.tsdb_version, pg_dump_major=p.pg_dump_major, relations=relations,
                            hypertable_names=hyper, dump_seconds=seconds, taken_at=p.taken_at, run_id=run_id)
        manifest["upload"] = {"parts": sent.parts, "etag": sent.etag, "seconds": sent.seconds}
        manifest["encryption"] = sent.encryption
        manifest["local_copy"] = p.local_copy
        readback = None
        if not s.verify:  # nothing else will read it back: prove the object now
            readback = download(hook, s.bucket, p.s3_key, None, expect_size=sent.size_bytes,
                                expect_sha256=sent.sha256, policy=s.retry, say=say)
            manifest["readback"] = {"seconds": readback.seconds, "sha256": readback.sha256}
        store.put_json(hook, s.bucket, p.manifest_key, manifest, s.retry, say, encryption=s.encryption)
        if readback is not None:
            move_latest(hook, s, p, manifest)
    except Exception as exc:
        with t.connect(autocommit=True) as c:
            journal.set_status(c, backup_id, "failed", error=f"dump: {exc}")
        raise
    with t.connect(autocommit=True) as c:
        journal.set_status(c, backup_id, "uploaded", size_bytes=sent.size_bytes, sha256=sent.sha256,
                           duration_s=seconds, manifest=manifest)
    return UploadedBackup(
        dbname=p.dbname, name=p.name, bucket=p.bucket, s3_key=p.s3_key, manifest_key=p.manifest_key,
        latest_key=p.latest_key, backup_id=backup_id, size_bytes=sent.size_bytes, sha256=sent.sha256,
        dump_seconds=round(seconds, 3), parts=sent.parts, encryption=sent.encryption, tables=len(counted),
        views=len(relations) - len(counted), rows=manifest["total_rows"], latest_moved=readback is not None,
        local_copy=p.local_copy)


def move_latest(hook: Any, s: BackupSettings, d: BackupPlan | UploadedBackup, manifest: dict[str, Any]) -> None:
    name = BackupName.parse(d.s3_key)
    assert name is not None
    store.put_json(hook, s.bucket, d.latest_key, store.latest_pointer(name, manifest, d.s3_key, d.manifest_key),
                   s.retry, encryption=s.encryption)


@contextlib.contextmanager
def fetched(hook: Any, bucket: str, key: str, manifest: dict[str, Any], s: BackupSettings,
            say: Say = log.info) -> Iterator[Path]:
    """The object as a file of this step only (in its own temp dir, removed afterwards), its size and SHA-256
    equal to the manifest's, else ``BackupStoreError``."""
    with tempfile.TemporaryDirectory(prefix="quant-db-ops-restore-", dir=work_dir(s)) as tmp:
        path = Path(tmp) / key.rsplit("/", 1)[-1]
        with path.open("wb") as out:
            got = download(hook, bucket, key, out, expect_size=manifest["size_bytes"],
                           expect_sha256=manifest["sha256"], policy=s.retry, say=say)
        say("Fetched s3://%s/%s: %s bytes in %.1fs, sha256 equal to the manifest's", bucket, key,
            f"{got.size_bytes:,}", got.seconds)
        yield path


def latest_story(hook: Any, s: BackupSettings, d: UploadedBackup) -> str:
    """Where ``latest`` points and how old that backup is (the one a restore would take now)."""
    pointer = store.get_json(hook, s.bucket, d.latest_key, s.retry)
    if not pointer:
        return "'latest' points at no backup yet: there is no verified backup of this database to restore"
    taken = datetime.fromisoformat(pointer["taken_at"])
    age = datetime.now(taken.tzinfo) - taken
    return (f"'latest' still points at {pointer['name']}, taken {taken:%Y-%m-%d %H:%M} {taken.tzname() or ''} "
            f"({age.days} d {age.seconds // 3600} h ago): that is the backup a restore takes now")


def verify(target: Target, hook: Any, d: UploadedBackup, s: BackupSettings, *, say: Say = log.info) -> Verification:
    """Fetch the object from the bucket, prove it against its manifest, restore it into a scratch database,
    compare, drop the scratch database; then mark verified and move ``latest``."""
    t = PgTarget.of(target)
    scratch = f"{d.dbname[:30]}_verify_{d.name[-15:].lower()}"
    manifest = store.get_json(hook, s.bucket, d.manifest_key, s.retry)
    if manifest is None:
        raise store.BackupStoreError(f"s3://{s.bucket}/{d.manifest_key} is missing: the dump step wrote it; "
                                     "clear the dump task")
    drop_database(t, scratch)  # a killed earlier try may have left it
    started = time.perf_counter()
    try:
        with fetched(hook, s.bucket, d.s3_key, manifest, s, say) as path:
            result = restore_and_check(t, scratch, path, manifest, bin_dir=s.bin_dir, jobs=s.restore_jobs, say=say)
    finally:
        drop_database(t, scratch)
    verification = {**result.as_dict(), "verified_at": datetime.now().astimezone().isoformat(),
                    "seconds_with_fetch": round(time.perf_counter() - started, 3), "scratch_dropped": True}
    with t.connect(autocommit=True) as c:
        if not result.comparison.ok:
            summary = result.comparison.summary()
            journal.set_status(c, d.backup_id, "failed", error=f"verification restore differs: {summary}")
            raise VerificationError(f"verification restore differs from the manifest: {summary}\n"
                                    f"The scratch database {scratch} was dropped. {latest_story(hook, s, d)}",
                                    result.comparison.advice())
        manifest.update(verified=True, verification=verification)
        store.put_json(hook, s.bucket, d.manifest_key, manifest, s.retry, encryption=s.encryption)
        move_latest(hook, s, d, manifest)
        journal.set_status(c, d.backup_id, "verified", manifest=manifest)
    return Verification(s3_key=d.s3_key, scratch_db=scratch, seconds=verification["seconds"],
                        relations=result.comparison.relations, compared=result.comparison.how_compared(),
                        rows=result.comparison.rows)


def gather(hook: Any, s: BackupSettings, dbname: str) -> tuple[dict[str, Candidate], dict[str, dict[str, Any]]]:
    """Every backup of ``dbname`` in the bucket and the local directory, with its verified flag."""
    where: dict[str, dict[str, Any]] = {}
    found = store.list_backups(hook, s.bucket, f"{s.prefix}/{dbname}/", s.retry)
    verified: dict[str, bool] = {}
    taken: dict[str, datetime] = {}
    for stem, item in found.items():
        where.setdefault(stem, {})["s3"] = [k for k in (item.dump_key, item.manifest_key) if k]
        where[stem]["s3_dump"] = item.dump_key
        taken[stem] = item.name.taken_at
        m = store.get_json(hook, s.bucket, item.manifest_key, s.retry) if item.manifest_key else None
        verified[stem] = verified.get(stem, False) or bool(m and m.get("verified"))
    local = Path(s.local_dir) / dbname
    for path in sorted(local.glob(f"{dbname}_*")) if local.is_dir() else []:
        name = BackupName.parse(path.name)
        if name is None or name.dbname != dbname:
            continue
        where.setdefault(name.stem, {}).setdefault("local", []).append(str(path))
        taken[name.stem] = name.taken_at
        if path.name.endswith(".manifest.json"):
            verified[name.stem] = verified.get(name.stem, False) or bool(mf.read(path).get("verified"))
    return {stem: Candidate(stem, taken[stem], verified.get(stem, False)) for stem in taken}, where


def retention(target: Target, hook: Any, s: BackupSettings, *, dbname: str, now: datetime,
              current: str | None = None, say: Say = log.info) -> RetentionOutcome:
    """Delete expired backups in the bucket and on disk (not in a dry run); mark them deleted in ops.backups."""
    candidates, where = gather(hook, s, dbname)
    latest = store.get_json(hook, s.bucket, latest_key(dbname, s.prefix), s.retry)
    pinned = [x for x in (current, (latest or {}).get("name")) if x]
    decision: RetentionPlan = plan(candidates.values(), now=now, max_age_days=s.retention_days,
                                   keep_verified=s.keep_verified, always_keep=pinned)
    s3_keys = [k for stem in decision.delete for k in where[stem].get("s3", [])]
    local_files = [f for stem in decision.delete for f in where[stem].get("local", [])]
    if not s.dry_run:
        if s3_keys:
            store.with_retries("retention delete", lambda: hook.delete_objects(s.bucket, s3_keys), s.retry,
                               bucket=s.bucket, hook=hook)
        for f in local_files:
            Path(f).unlink(missing_ok=True)
        with PgTarget.of(target).connect(autocommit=True) as c:
            journal.mark_deleted(c, [where[stem]["s3_dump"] for stem in decision.delete
                                     if where[stem].get("s3_dump")])
    return RetentionOutcome(dry_run=s.dry_run, deleted=list(decision.delete), kept=dict(decision.keep),
                            deleted_s3_keys=s3_keys, deleted_local_files=local_files)

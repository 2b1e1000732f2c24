"""The nightly backup's steps as plain functions (the operators call them; the tests call them too).

preflight -> dump -> upload -> verify -> retention. Each takes libpq keyword arguments (never a DSN string
with a password in it), an ``S3Hook`` where it needs the bucket, and ``BackupSettings``; each returns
metadata only (keys, sizes, checksums, counts), ready for XCom.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from quantdbops.backup import journal, store
from quantdbops.backup import manifest as mf
from quantdbops.backup.dump import check_client_compatible, run_pg_dump, sha256_file
from quantdbops.backup.naming import BackupName, latest_key
from quantdbops.backup.restore import drop_database, restore_and_check
from quantdbops.backup.retention import Candidate, RetentionPlan, plan
from quantdbops.backup.settings import BackupSettings
from quantdbops.io.pg import connect
from quantdbops.sqlfiles import read_sql

log = logging.getLogger(__name__)
Say = Callable[..., None]


class PreflightError(RuntimeError):
    """A pre-flight check failed: nothing was written."""


class VerificationError(RuntimeError):
    """The verification restore did not match the manifest; ``advice`` says what the differences point at."""

    def __init__(self, message: str, advice: str = "") -> None:
        super().__init__(message)
        self.advice = advice


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def preflight(conn_kwargs: dict[str, object], hook: Any, s: BackupSettings, when: datetime) -> dict[str, Any]:
    """Database answers, the client fits the server, disk holds the dump, the bucket answers.

    A database or bucket that cannot answer as configured (no such database, role or bucket, refused
    credentials) raises ``ActionableFailure`` at once; one that does not answer now, ``PreflightError`` or
    ``BackupStoreError`` for Airflow's retries."""
    try:
        with connect(conn_kwargs, autocommit=True) as c:
            row = c.execute(read_sql("backup/select_preflight.sql")).fetchone()
    except psycopg.OperationalError as exc:
        raise PreflightError(f"the database does not answer ({' '.join(str(exc).split())}): a transient failure, "
                             "the task fails normally and Airflow's task retries follow") from exc
    dbname, size, server_version, tsdb_version, has_journal = row
    pg_version = str(server_version).split()[0]
    client = check_client_compatible(pg_version, s.bin_dir)
    free = shutil.disk_usage(_existing_parent(Path(s.local_dir))).free
    needed = int(size * s.disk_headroom)
    if free < needed:
        raise PreflightError(f"{s.local_dir}: {free / 1e9:.2f} GB free, the dump may need {needed / 1e9:.2f} GB "
                             f"(database size {size / 1e9:.2f} GB): free disk or point local_dir elsewhere")
    store.check_bucket(hook, s.bucket, s.retry)
    name = BackupName.at(dbname, when)
    return {"dbname": dbname, "name": name.stem, "taken_at": name.taken_at.isoformat(),
            "s3_key": name.dump_key(s.prefix), "manifest_key": name.manifest_key(s.prefix),
            "latest_key": latest_key(dbname, s.prefix), "bucket": s.bucket,
            "local_path": str(name.local_dump(s.local_dir)), "local_manifest": str(name.local_manifest(s.local_dir)),
            "db_size_bytes": int(size), "free_bytes": int(free), "pg_version": pg_version,
            "tsdb_version": tsdb_version, "pg_dump_major": client, "journal": bool(has_journal)}


def dump(conn_kwargs: dict[str, object], p: dict[str, Any], s: BackupSettings, *, run_id: str,
         say: Say = log.info) -> dict[str, Any]:
    """pg_dump in one exported snapshot; the manifest's relations (kinds, table rows, views' population) are
    read in that same snapshot."""
    with connect(conn_kwargs, autocommit=True) as c:
        backup_id = journal.start(c, run_id=run_id, s3_key=p["s3_key"], local_path=p["local_path"],
                                  pg_version=p["pg_version"], tsdb_version=p["tsdb_version"])
    try:
        with connect(conn_kwargs) as snap:
            snap.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            snap.read_only = True
            snapshot = snap.execute("SELECT pg_export_snapshot()").fetchone()[0]
            say("Dumping %s (snapshot %s) to %s", p["dbname"], snapshot, p["local_path"])
            result = run_pg_dump(conn_kwargs, p["local_path"], bin_dir=s.bin_dir, snapshot=snapshot)
            counts_start = time.perf_counter()
            relations = mf.inventory(snap)
            hyper = mf.hypertables(snap)
            snap.rollback()
        counted = {k: r.rows for k, r in relations.items() if r.kind in mf.COUNTED}
        say("Counted the rows of %d tables in the dump's snapshot in %.1fs (%d views: not counted, their rows "
            "are as old as their last refresh)", len(counted), time.perf_counter() - counts_start,
            len(relations) - len(counted))
        if result.warnings:
            say("pg_dump said: %s", result.warnings)
        manifest = mf.build(name=p["name"], dbname=p["dbname"], s3_key=p["s3_key"], bucket=p["bucket"],
                            size_bytes=result.size_bytes, sha256=result.sha256, pg_version=p["pg_version"],
                            tsdb_version=p["tsdb_version"], pg_dump_major=p["pg_dump_major"], relations=relations,
                            hypertable_names=hyper, dump_seconds=result.seconds, taken_at=p["taken_at"],
                            run_id=run_id)
        mf.write(manifest, p["local_manifest"])
    except Exception as exc:
        with connect(conn_kwargs, autocommit=True) as c:
            journal.set_status(c, backup_id, "failed", error=f"dump: {exc}")
        raise
    with connect(conn_kwargs, autocommit=True) as c:
        journal.set_status(c, backup_id, "running", size_bytes=result.size_bytes, sha256=result.sha256,
                           duration_s=result.seconds, manifest=manifest)
    return {**p, "backup_id": backup_id, "size_bytes": result.size_bytes, "sha256": result.sha256,
            "dump_seconds": round(result.seconds, 3), "tables": len(counted), "views": len(relations) - len(counted),
            "rows": manifest["total_rows"]}


def upload(conn_kwargs: dict[str, object], hook: Any, d: dict[str, Any], s: BackupSettings, *,
           say: Say = log.warning) -> dict[str, Any]:
    """Upload the local dump, read it back, then write the manifest (and move "latest" unless verifying)."""
    backup_id = d.get("backup_id")
    try:
        if not Path(d["local_path"]).is_file():
            raise FileNotFoundError(f"local dump {d['local_path']} is gone: clear the dump task to take a new one")
        size, sha = sha256_file(d["local_path"])  # a retry re-uses the kept dump: prove it is still the same
        if (size, sha) != (d["size_bytes"], d["sha256"]):
            raise store.BackupStoreError(f"local dump {d['local_path']} changed since it was taken "
                                         f"(sha256 {sha} != {d['sha256']}): clear the dump task")
        info = store.upload_dump(hook, s.bucket, d["local_path"], d["s3_key"], size_bytes=size, sha256=sha,
                                 policy=s.retry, say=say)
        manifest = mf.read(d["local_manifest"])
        manifest["upload"] = info
        mf.write(manifest, d["local_manifest"])
        store.put_json(hook, s.bucket, d["manifest_key"], manifest, s.retry, say)
        moved = False
        if not s.verify:
            move_latest(hook, s, d, manifest)
            moved = True
    except Exception as exc:
        with connect(conn_kwargs, autocommit=True) as c:
            journal.set_status(c, backup_id, "failed", error=f"upload: {exc} (local dump kept: {d['local_path']})")
        raise
    with connect(conn_kwargs, autocommit=True) as c:
        journal.set_status(c, backup_id, "uploaded", manifest=manifest)
    seconds = info["upload_seconds"]
    return {**d, **info, "latest_moved": moved,
            "upload_mb_per_s": round(size / 1e6 / seconds, 2) if seconds > 0 else None}


def move_latest(hook: Any, s: BackupSettings, d: dict[str, Any], manifest: dict[str, Any]) -> None:
    name = BackupName.parse(d["s3_key"])
    assert name is not None
    store.put_json(hook, s.bucket, d["latest_key"],
                   store.latest_pointer(name, manifest, d["s3_key"], d["manifest_key"]), s.retry)


def verify(conn_kwargs: dict[str, object], hook: Any, u: dict[str, Any], s: BackupSettings, *,
           say: Say = log.info) -> dict[str, Any]:
    """Restore the dump into a scratch database, compare with the manifest, drop it; then mark verified."""
    scratch = f"{u['dbname'][:30]}_verify_{u['name'][-15:].lower()}"
    manifest = mf.read(u["local_manifest"])
    drop_database(conn_kwargs, scratch)  # a killed earlier try may have left it
    try:
        result = restore_and_check(conn_kwargs, scratch, u["local_path"], manifest, bin_dir=s.bin_dir,
                                   jobs=s.restore_jobs, say=say)
    finally:
        drop_database(conn_kwargs, scratch)
    verification = {**result.as_dict(), "verified_at": datetime.now().astimezone().isoformat()}
    with connect(conn_kwargs, autocommit=True) as c:
        if not result.comparison.ok:
            summary = result.comparison.summary()
            journal.set_status(c, u.get("backup_id"), "failed", error=f"verification restore differs: {summary}")
            raise VerificationError(f"verification restore differs from the manifest: {summary}",
                                    result.comparison.advice())
        manifest.update(verified=True, verification=verification)
        mf.write(manifest, u["local_manifest"])
        store.put_json(hook, s.bucket, u["manifest_key"], manifest, s.retry)
        move_latest(hook, s, u, manifest)
        journal.set_status(c, u.get("backup_id"), "verified", manifest=manifest)
    return {**u, "verified": True, "verify_seconds": verification["seconds"], "scratch_db": scratch,
            "verify_relations": result.comparison.relations, "verify_compared": result.comparison.how_compared(),
            "verify_rows": result.comparison.rows, "latest_moved": True}


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


def retention(conn_kwargs: dict[str, object], hook: Any, s: BackupSettings, *, dbname: str, now: datetime,
              current: str | None = None, say: Say = log.info) -> dict[str, Any]:
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
        with connect(conn_kwargs, autocommit=True) as c:
            journal.mark_deleted(c, [where[stem]["s3_dump"] for stem in decision.delete
                                     if where[stem].get("s3_dump")])
    return {"dry_run": s.dry_run, "deleted": list(decision.delete), "kept": decision.keep,
            "deleted_s3_keys": s3_keys, "deleted_local_files": local_files}

"""The backup benchmark's timed steps, each returning the bytes it moved and naming its parts.

(a) a bare ``pg_dump -Fc`` to a local file; (b) the ``dump`` task's function, ``nightly_steps.dump``, streaming into
the bucket; (c) a bare ``pg_restore`` of (a)'s file into a fresh database; (d) the ``verify`` task's function,
``nightly_steps.verify``. The bare steps use the same client programs and the same connection as the DAG's
(``client_target`` of the connection's libpq arguments).

The DAG's functions are called as the tasks call them. Their parts are timed by wrapping, for one call, the
functions they look up at call time (``nightly_steps.upload_stream``, ``nightly_steps.download``,
``nightly_steps.restore_and_check``, ``databases.check_restored``): a clock reading either side, nothing else.

Probes (not in any ratio) take the streamed dump apart: ``pg_dump`` read through its pipe and hashed without
the bucket; SHA-256 alone; the upload alone (``upload_stream`` fed from (a)'s file instead of a running
``pg_dump``) with more or fewer parts in flight.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from psycopg import sql

from quantdbops.backup import databases, nightly_steps, store
from quantdbops.backup.dump import DumpProcess, client_target, run_pg_restore, tool
from quantdbops.backup.results import BackupPlan, UploadedBackup, Verification
from quantdbops.backup.settings import BackupSettings
from quantdbops.backup.stream import part_size_for, upload_stream
from quantdbops.io.pg import PgTarget

Parts = dict[str, float]  # named parts of one run, seconds

# Names of the parts; the report reads them back.
STREAMED = "pg_dump -Fc streamed into the multipart upload"
DUMP_PROCESS = "  of which pg_dump's own run (start to exit)"
AFTER_EXIT = "  of which after pg_dump exited (completion, HEAD)"
DUMP_REST = "journal, snapshot, row counts, manifest PUT"
BARE_RESTORE = "pg_restore"
BARE_SETUP = "CREATE DATABASE, TimescaleDB pre/post restore"
FETCH = "fetch from the bucket + SHA-256 (to a temp file)"
SCRATCH_SETUP = "CREATE DATABASE, TimescaleDB pre/post restore"
RESTORE = "pg_restore"
COMPARE = "compare with the manifest"
VERIFY_REST = "drop scratch DB, manifest GET/PUT, latest, journal"


def quiet(*_args: object, **_kwargs: object) -> None:
    """The steps' log lines are not the benchmark's output."""


@contextlib.contextmanager
def stopwatch(*spots: tuple[ModuleType, str]) -> Iterator[dict[str, float]]:
    """Seconds spent in each ``module.function`` while the block runs (the originals are put back after)."""
    took: dict[str, float] = {}
    saved = [(module, name, getattr(module, name)) for module, name in spots]

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                took[name] = took.get(name, 0.0) + time.perf_counter() - started
        return wrapper

    for module, name, fn in saved:
        setattr(module, name, timed(name, fn))
    try:
        yield took
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)


# --- (a) and (c): the baselines -------------------------------------------------------------------------------
def bare_pg_dump(target: PgTarget, out: Path) -> tuple[int, Parts]:
    """(a): ``pg_dump -Fc --file``, same client, same connection; returns the file's size."""
    conninfo, env = client_target(target.args())
    res = subprocess.run([tool("pg_dump"), "--format=custom", "--no-password", f"--file={out}",
                          f"--dbname={conninfo}"], env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"pg_dump exited with {res.returncode}: {res.stderr[-2000:]}")
    return out.stat().st_size, {}


def bare_pg_restore(target: PgTarget, dbname: str, path: Path, *, tsdb_version: str | None,
                    jobs: int) -> tuple[int, Parts]:
    """(c): what a restore by hand takes: a new database, TimescaleDB's documented pre/post restore steps where
    the dump holds it, ``pg_restore`` (same client, same jobs as the DAG's) of (a)'s file."""
    admin, into = target.on("postgres"), target.on(dbname)
    started = time.perf_counter()
    with admin.connect(autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(dbname)))
    if tsdb_version:
        with into.connect(autocommit=True) as c:
            c.execute("CREATE EXTENSION timescaledb")
            c.execute("SELECT timescaledb_pre_restore()")
    seconds = run_pg_restore(into.args(), dbname, path, jobs=jobs)
    if tsdb_version:
        with into.connect(autocommit=True) as c:
            c.execute("SELECT timescaledb_post_restore()")
    total = time.perf_counter() - started
    return path.stat().st_size, {BARE_RESTORE: seconds, BARE_SETUP: total - seconds}


def drop_database(target: PgTarget, dbname: str) -> None:
    with target.on("postgres").connect(autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


# --- (b) and (d): the DAG's steps -----------------------------------------------------------------------------
def dag_dump(target: PgTarget, plan: BackupPlan, s: BackupSettings, run_id: str) -> tuple[UploadedBackup, Parts]:
    """(b): what the ``dump`` task runs: ``nightly_steps.dump`` with a fresh hook."""
    started = time.perf_counter()
    with stopwatch((nightly_steps, "upload_stream")) as took:
        d = nightly_steps.dump(target, store.make_hook(s.aws_conn_id), plan, s, run_id=run_id, say=quiet)
    total = time.perf_counter() - started
    streamed = took["upload_stream"]
    return d, {STREAMED: streamed, DUMP_PROCESS: d.dump_seconds, AFTER_EXIT: streamed - d.dump_seconds,
               DUMP_REST: total - streamed}


def dag_verify(target: PgTarget, d: UploadedBackup, s: BackupSettings) -> tuple[Verification, Parts]:
    """(d): what the ``verify`` task runs: ``nightly_steps.verify`` with a fresh hook."""
    started = time.perf_counter()
    with stopwatch((nightly_steps, "download"), (nightly_steps, "restore_and_check"),
                   (databases, "check_restored")) as took:
        v = nightly_steps.verify(target, store.make_hook(s.aws_conn_id), d, s, say=quiet)
    total = time.perf_counter() - started
    restored = took["restore_and_check"]
    return v, {FETCH: took["download"], SCRATCH_SETUP: restored - v.seconds - took["check_restored"],
               RESTORE: v.seconds, COMPARE: took["check_restored"],
               VERIFY_REST: total - took["download"] - restored}


def restore_part(parts: Parts) -> float:
    """The part of (d) that does what (c) does: new database, pre/post restore, pg_restore."""
    return parts[SCRATCH_SETUP] + parts[RESTORE]


# --- probes -----------------------------------------------------------------------------------------------------
def sha256_seconds(path: Path) -> float:
    """SHA-256 of the dump file in this process, 1 MB at a time (as the stream hashes)."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return time.perf_counter() - started


def pipe_only(target: PgTarget) -> float:
    """``pg_dump`` read from its pipe and hashed as (b) reads it (1 MB reads, SHA-256), then thrown away: (b)
    without the bucket."""
    started = time.perf_counter()
    proc = DumpProcess(target.args())
    digest = hashlib.sha256()
    try:
        while chunk := proc.read(1 << 20):
            digest.update(chunk)
        proc.finish()
    except BaseException:
        proc.kill()
        raise
    return time.perf_counter() - started


def upload_only(path: Path, s: BackupSettings, key: str, db_size: int, in_flight: int) -> float:
    """``upload_stream`` of (a)'s file (in the page cache) instead of a running pg_dump: the bucket's side alone,
    with the part size the DAG picks and ``in_flight`` parts at once."""
    hook = store.make_hook(s.aws_conn_id)
    started = time.perf_counter()
    with path.open("rb") as fh:
        upload_stream(hook, s.bucket, key, fh.read, encryption=s.encryption,
                      part_size=s.part_size or part_size_for(db_size), in_flight=in_flight, policy=s.retry,
                      say=quiet)
    return time.perf_counter() - started

"""Restore a dump into a database and prove it: the scratch verification and the restore DAG share this.

TimescaleDB (its documented procedure): the target gets ``CREATE EXTENSION timescaledb`` in the dump's
version first, then ``SELECT timescaledb_pre_restore()``, ``pg_restore``, ``SELECT timescaledb_post_restore()``
(which also runs when ``pg_restore`` fails, so the database never stays in restoring mode).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from quantdbops.backup import manifest as mf
from quantdbops.backup.dump import run_pg_restore
from quantdbops.backup.naming import check_db_name
from quantdbops.io.pg import PgTarget
from quantdbops.io.pg import TargetLike as Target

log = logging.getLogger(__name__)


def _admin(target: PgTarget) -> PgTarget:
    return target.on("postgres")


def database_exists(target: Target, dbname: str) -> bool:
    with _admin(PgTarget.of(target)).connect(autocommit=True) as c:
        return c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


def drop_database(target: Target, dbname: str) -> None:
    with _admin(PgTarget.of(target)).connect(autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(check_db_name(dbname))))


def create_database(target: Target, dbname: str) -> None:
    # template0: a restore wants an empty database, whatever template1 holds on this server.
    with _admin(PgTarget.of(target)).connect(autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
            sql.Identifier(check_db_name(dbname))))


@dataclass
class RestoreResult:
    """What a restore did and what the checks against the manifest found."""

    dbname: str
    seconds: float
    timescaledb: bool
    comparison: mf.Comparison

    def as_dict(self) -> dict[str, Any]:
        return {"database": self.dbname, "seconds": round(self.seconds, 3), "timescaledb": self.timescaledb,
                "relations": self.comparison.relations, "rows": self.comparison.rows, "ok": self.comparison.ok,
                "problems": self.comparison.problems}


def restore_into(target: Target, dbname: str, dump_path: str | Path, manifest: dict[str, Any], *,
                 bin_dir: str | None = None, jobs: int = 1, say: Callable[..., None] = log.info) -> float:
    """Restore ``dump_path`` into the existing, empty database ``dbname``; TimescaleDB-aware."""
    into = PgTarget.of(target).on(check_db_name(dbname))
    tsdb = manifest.get("tsdb_version")
    if not tsdb:
        return run_pg_restore(into.args(), dbname, dump_path, bin_dir=bin_dir, jobs=jobs)
    with into.connect(autocommit=True) as c:
        # The dump's catalog rows only fit the same extension version.
        c.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS timescaledb VERSION {}").format(sql.Literal(tsdb)))
        c.execute("SELECT timescaledb_pre_restore()")
    say("TimescaleDB %s: timescaledb_pre_restore() done, restoring", tsdb)
    try:
        return run_pg_restore(into.args(), dbname, dump_path, bin_dir=bin_dir, jobs=jobs)
    finally:
        with into.connect(autocommit=True) as c:
            c.execute("SELECT timescaledb_post_restore()")
        say("TimescaleDB: timescaledb_post_restore() done")


def check_restored(target: Target, dbname: str, manifest: dict[str, Any]) -> mf.Comparison:
    """Every relation vs the manifest (tables by rows, views by presence and population), index validity,
    and (TimescaleDB) the hypertables."""
    with PgTarget.of(target).on(dbname).connect(autocommit=True) as c:
        restored = mf.inventory(c)
        invalid = mf.invalid_indexes(c)
        hyper = mf.hypertables(c) if manifest.get("tsdb_version") else None
    return mf.compare(manifest, restored, invalid=invalid, restored_hypertables=hyper)


def restore_and_check(target: Target, dbname: str, dump_path: str | Path,
                      manifest: dict[str, Any], *, bin_dir: str | None = None, jobs: int = 1,
                      say: Callable[..., None] = log.info) -> RestoreResult:
    """Create ``dbname`` (it must not exist), restore into it, check it against the manifest."""
    create_database(target, dbname)
    seconds = restore_into(target, dbname, dump_path, manifest, bin_dir=bin_dir, jobs=jobs, say=say)
    comparison = check_restored(target, dbname, manifest)
    return RestoreResult(dbname, seconds, bool(manifest.get("tsdb_version")), comparison)

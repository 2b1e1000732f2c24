"""The ``ops.backups`` rows: one per backup, moved running -> uploaded -> verified (or failed, deleted)."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from quantdbops.sqlfiles import read_sql


def has_journal(conn: psycopg.Connection) -> bool:
    return bool(conn.execute("SELECT to_regclass('ops.backups') IS NOT NULL").fetchone()[0])


def start(conn: psycopg.Connection, *, run_id: str, s3_key: str, local_path: str, pg_version: str,
          tsdb_version: str | None) -> int | None:
    """The row of this run and key (a retried task reuses it, reset to running); None without ops schema."""
    if not has_journal(conn):
        return None
    args = {"run_id": run_id, "s3_key": s3_key}
    row = conn.execute(read_sql("backup/select_backup_id.sql"), args).fetchone()
    if row:
        set_status(conn, row[0], "running")
        return int(row[0])
    return int(conn.execute(read_sql("backup/insert_backup.sql"), {
        **args, "local_path": local_path, "pg_version": pg_version, "tsdb_version": tsdb_version}).fetchone()[0])


def set_status(conn: psycopg.Connection, backup_id: int | None, status: str, *, size_bytes: int | None = None,
               sha256: str | None = None, duration_s: float | None = None, manifest: dict[str, Any] | None = None,
               error: str | None = None) -> None:
    if backup_id is None:
        return
    conn.execute(read_sql("backup/update_backup_status.sql"), {
        "id": backup_id, "status": status, "size_bytes": size_bytes, "sha256": sha256, "duration_s": duration_s,
        "manifest": json.dumps(manifest, default=str) if manifest is not None else None,
        "error": (error or "")[:4000] if status == "failed" else None})


def mark_deleted(conn: psycopg.Connection, s3_keys: list[str]) -> int:
    if not s3_keys or not has_journal(conn):
        return 0
    return conn.execute(read_sql("backup/update_backups_deleted.sql"), {"s3_keys": s3_keys}).rowcount

"""
# Nightly backup of `quant_platform` to S3, proven by a restore

**What it does.** `preflight` checks that the database answers, that `pg_dump` (PostgreSQL 15 client,
`QUANT_PG_BIN`) can dump this server, that the local disk holds at least the database's size, and that the
bucket answers; it records the PostgreSQL and TimescaleDB versions. `dump` runs `pg_dump -Fc` (custom
format, the one `postgres_restore` reads) in an exported snapshot, hashing SHA-256 while the bytes stream
to `<local_dir>/quant_platform/quant_platform_YYYYmmddTHHMMSS.dump`, and records in that same snapshot
every relation with its kind: the rows of each table and hypertable, whether each materialized view is
populated. `upload` sends it (multipart above 64 MB) to
`s3://<bucket>/backups/quant_platform/YYYY/MM/DD/…dump`, **reads size and SHA-256 back**, then writes the
manifest JSON beside it (checksum, size, versions, relations and row counts, durations). `verify` restores
the dump into a scratch database (TimescaleDB: `timescaledb_pre_restore()` / `timescaledb_post_restore()`),
compares it with the manifest (tables and hypertables by exact rows; materialized views and continuous
aggregates by presence and population only, since a restore refreshes them), index validity and
hypertables, drops the scratch database, marks the backup verified and only then moves
`backups/quant_platform/latest.json` to it (with `verify: false`, `latest` moves right after the
read-back). `retention` deletes bucket objects and local files older than `retention_days` (30) but never
the newest `keep_verified` (7) verified backups nor the latest. `report`
ends the log with one table: size, duration, MB/s, checksum, key, verified. Every step is journaled in
`ops.backups` (running → uploaded → verified, or failed with the reason; deleted by retention).

**Schedule.** 02:00 Asia/Seoul every night (markets closed); no catch-up; one run at a time.

**Manual run.** Trigger with a conf such as
```json
{"dry_run": true, "verify": true, "retention_days": 30, "keep_verified": 7,
 "bucket": null, "local_dir": "/opt/airflow/backups"}
```
`dry_run: true` plans and reports (names, sizes, what retention would delete) and writes nothing.
The bucket is the param, else the Airflow Variable `quant_backup_bucket`, else `quant-db-backups`.

**When it fails.**
- *preflight*: a database, role or bucket that does not exist, or refused credentials: fails at once (no
  retries; the message names it and what to fix). Database or bucket unreachable or throttled: retries by
  itself. Not enough disk (free space or set `local_dir`), `pg_dump` older than the server (install its
  client, set `QUANT_PG_BIN`). Nothing written.
- *dump*: read the `pg_dump` error in the log; a half-written dump is never left looking finished.
- *upload*: S3 down, throttling or the connection dropped: retried with back-off, then failed (Airflow
  retries it). No such bucket, access denied or refused credentials: fails at once with what to fix. Either
  way no manifest is written and `latest` is not moved, so nothing points at a partial object; the dump is
  **kept** on disk: once S3 answers, clear `upload` only.
- *verify* (the important one): a table or hypertable does not restore to the rows of the dump's snapshot,
  a relation is missing, or a view populated at dump time is not after restore. The message names each
  relation with its kind and says whether all others matched; the alert's "what to do" follows the evidence.
  `latest` still points at the previous verified backup; ops.backups says failed with the differences.
  Investigate before the next night. (A view stale at dump time never fails it.)
- *retention*: deletion failed; nothing is lost, the next night retries.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag
from airflow.timetables.trigger import CronTriggerTimetable

from quantdbops import HEAVY_DB_POOL, PLATFORM_TZ
from quantdbops.backup.params import backup_params
from quantdbops.dag_policy import default_args, run_failure_alert
from quantdbops.operators.backup import (
    BackupPreflightOperator,
    BackupReportOperator,
    BackupRetentionOperator,
    DumpDatabaseOperator,
    UploadBackupOperator,
    VerifyBackupOperator,
)


@dag(
    dag_id="postgres_backup_nightly",
    schedule=CronTriggerTimetable("0 2 * * *", timezone=PLATFORM_TZ),
    start_date=pendulum.datetime(2025, 1, 1, tz=PLATFORM_TZ),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    params=backup_params(),
    default_args=default_args(),
    on_failure_callback=run_failure_alert(),
    tags=["quant-db-ops", "backup", "scheduled"],
)
def postgres_backup_nightly() -> None:
    preflight = BackupPreflightOperator(task_id="preflight")
    dump = DumpDatabaseOperator(task_id="dump", pool=HEAVY_DB_POOL)
    upload = UploadBackupOperator(task_id="upload")
    verify = VerifyBackupOperator(task_id="verify", pool=HEAVY_DB_POOL)
    retention = BackupRetentionOperator(task_id="retention")
    report = BackupReportOperator(task_id="report")
    preflight >> dump >> upload >> verify >> retention >> report


dag = postgres_backup_nightly()

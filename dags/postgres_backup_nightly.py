"""
# Nightly backup of `quant_platform` to S3, proven by a restore

**What it does.** `preflight` checks that the database answers, that `pg_dump` (PostgreSQL 15 client,
`QUANT_PG_BIN`) can dump this server, that the bucket answers and that the worker's temp dir holds the
database's size (the verification fetches the dump there); it records the PostgreSQL and TimescaleDB
versions. `dump` runs `pg_dump -Fc` (custom format, the one `postgres_restore` reads) in an exported
snapshot and **streams it straight into the bucket** (multipart, SHA-256 computed on the way, server-side
encryption, AES256 by default) at `s3://<bucket>/backups/quant_platform/YYYY/MM/DD/…dump`; no dump is written
to a worker's disk. In that same snapshot it records every relation with its kind (the rows of each table
and hypertable, whether each materialized view is populated), then writes the manifest JSON beside the
object (checksum, size, encryption, versions, relations and row counts, durations). A failed `pg_dump` or a
failed upload aborts the multipart upload: no object, no manifest. `verify` fetches the object **from the
bucket** into its own temp dir, proves its SHA-256 against the manifest, restores it into a scratch database
(TimescaleDB: `timescaledb_pre_restore()` / `timescaledb_post_restore()`), compares it with the manifest
(tables and hypertables by exact rows; materialized views and continuous aggregates by presence and
population only, since a restore refreshes them), index validity and hypertables, drops the scratch database
and the fetched file, marks the backup verified and only then moves `backups/quant_platform/latest.json` to it
(with `verify: false`, `dump` reads the object back and moves `latest` itself). Any worker can run any step:
they share nothing but the database and the bucket. `retention` deletes bucket objects (and kept local
copies) older than `retention_days` (30) but never the newest `keep_verified` (7) verified backups nor the
latest. `report` ends the log with one table: size, duration, MB/s, checksum, key, verified. Every step is
journaled in `ops.backups` (running → uploaded → verified, or failed with the reason; deleted by retention).
Backup names and the folders in the bucket use Asia/Seoul time (the schedule's zone); the log lines' own
timestamps are UTC.

**Schedule.** 02:00 Asia/Seoul every night (markets closed); no catch-up; one run at a time.

**Manual run.** Trigger with a conf such as
```json
{"dry_run": true, "verify": true, "retention_days": 30, "keep_verified": 7, "bucket": null,
 "server_side_encryption": null, "kms_key_id": null, "keep_local_copy": false}
```
`dry_run: true` plans and reports (names, sizes, what retention would delete) and writes nothing.
The bucket is the param, else the Airflow Variable `quant_backup_bucket`, else `quant-db-backups`.
Encryption is the param, else the `quant_s3` connection's extra `server_side_encryption` (`AES256`,
`aws:kms` with `sse_kms_key_id`, or `none`), else AES256. `keep_local_copy` also writes the dump under
`local_dir` on the worker that took it (no other step needs it).

**When it fails.**
- *preflight*: a database, role or bucket that does not exist, or refused credentials: fails at once (no
  retries; the message names it and what to fix). Database or bucket unreachable or throttled: retries by
  itself. Not enough disk on the worker for the verification (free space, or point `QUANT_BACKUP_WORK_DIR`
  elsewhere), `pg_dump` older than the server (install its client, set `QUANT_PG_BIN`). Nothing written.
- *dump*: `pg_dump` failed (its error is in the log), or S3 went down, throttled or dropped the connection
  (retried with back-off, then failed: Airflow retries the task, which dumps again). No such bucket, access
  denied or refused credentials: fails at once with what to fix. Either way the multipart upload is aborted:
  no object, no manifest, `latest` not moved.
- *verify* (the important one): the object's SHA-256 differs from its manifest (corrupt or replaced), a table
  or hypertable does not restore to the rows of the dump's snapshot, a relation is missing, or a view populated
  at dump time is not after restore. The message names each relation with its kind and says whether all others
  matched and that the scratch database was dropped; the alert's "what to do" follows the evidence. `latest`
  still points at the previous verified backup; ops.backups says failed with the differences. Investigate
  before the next night. (A view stale at dump time never fails it.)
- *retention*: deletion failed; nothing is lost, the next night retries.
"""

from __future__ import annotations

from quantdbops import HEAVY_DB_POOL
from quantdbops.backup.params import backup_params
from quantdbops.dag_policy import cron, quant_dag
from quantdbops.operators.backup import (
    BackupPreflightOperator,
    BackupReportOperator,
    BackupRetentionOperator,
    DumpDatabaseOperator,
    VerifyBackupOperator,
)


@quant_dag("backup", schedule=cron("0 2 * * *"), doc_md=__doc__, params=backup_params())
def postgres_backup_nightly() -> None:
    preflight = BackupPreflightOperator(task_id="preflight")
    dump = DumpDatabaseOperator(task_id="dump", plan=preflight.output, pool=HEAVY_DB_POOL)
    verify = VerifyBackupOperator(task_id="verify", uploaded=dump.output, pool=HEAVY_DB_POOL)
    retention = BackupRetentionOperator(task_id="retention", plan=preflight.output)
    report = BackupReportOperator(task_id="report", plan=preflight.output, uploaded=dump.output,
                                  verification=verify.output, retention=retention.output)
    # Retention only after the new backup is proven (or the run is a dry run): it never deletes the last good one.
    verify >> retention >> report


dag = postgres_backup_nightly()

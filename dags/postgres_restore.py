"""
# Restore `quant_platform` (or a copy of it) from a backup

**What it does.** `resolve` finds the backup (`latest`, a dated key in the bucket, or a local `.dump` path)
and its manifest, and checks the target: a new database is simply created; an **existing** one is replaced
only if `confirm_target` repeats its name. `fetch` reads the object through once and proves its size and
SHA-256 equal the manifest's (nothing is kept): a corrupt or partial object is refused **before the target is
touched**. `safety_backup` streams a dump of the existing target into the bucket (`backups/<target>/safety/`,
encrypted like the nightly). `restore` fetches the dump again into its own temp dir, proves it again, drops and
recreates the target, runs `pg_restore` (TimescaleDB: `CREATE EXTENSION timescaledb` in the dump's version,
`timescaledb_pre_restore()`, restore, `timescaledb_post_restore()`), then checks it against the manifest
(every table and hypertable by exact row count; materialized views and continuous aggregates by presence,
and a view populated at dump time must be populated again: their rows are recomputed by the restore), that
no index is invalid and that every hypertable of the dump is a hypertable again; the log prints one line per
relation. No step needs a file another step left on a worker.

**Schedule.** Manual only; one run at a time.

**Trigger.** Rehearse into a fresh database (nothing existing is touched):
```json
{"backup": "latest", "target_database": "quant_platform_restore"}
```
The bad day (replaces the live database after a safety backup of it):
```json
{"backup": "backups/quant_platform/2025/10/17/quant_platform_20251017T020000.dump",
 "target_database": "quant_platform", "confirm_target": "quant_platform"}
```
Stop the writers (Airflow DAGs, the trading app) first; `restore` terminates remaining sessions of the target.

**When it fails.**
- *resolve*: no `latest`, no manifest beside the key (an upload that never completed), or the target exists
  without `confirm_target`. Nothing was touched.
- *fetch*: checksum mismatch: that object is corrupt; choose an older backup (the nightly keeps the newest
  verified ones). No such object, access denied: fails at once, naming the key. The target is untouched.
  (`restore` proves the object again itself before it touches the target.)
- *safety_backup*: the existing target could not be dumped: the restore does not go ahead.
- *restore* (no retries): `pg_restore` error, or a relation differs from the manifest (named with its
  kind). The target may be partial: restore again, or restore the safety backup (its key is in the
  `safety_backup` log) with this DAG.
"""

from __future__ import annotations

from quantdbops import HEAVY_DB_POOL
from quantdbops.backup.params import restore_params
from quantdbops.dag_policy import quant_dag
from quantdbops.operators.backup import (
    FetchBackupOperator,
    ResolveRestoreOperator,
    RestoreDatabaseOperator,
    SafetyBackupOperator,
)


@quant_dag("restore", doc_md=__doc__, params=restore_params(), retries=1)
def postgres_restore() -> None:
    resolve = ResolveRestoreOperator(task_id="resolve")
    fetch = FetchBackupOperator(task_id="fetch", plan=resolve.output)
    safety = SafetyBackupOperator(task_id="safety_backup", plan=resolve.output, pool=HEAVY_DB_POOL)
    restore = RestoreDatabaseOperator(task_id="restore", plan=resolve.output, pool=HEAVY_DB_POOL)
    # Nothing touches the target before the dump is proven, nor before the existing target is saved.
    fetch >> safety >> restore


dag = postgres_restore()

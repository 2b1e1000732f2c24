"""
# Weekly maintenance: vacuum, bloat-driven reindex, chunks / partitions, usage report

**What it does.** Keeps `quant_platform` (connection `quant_postgres`) clean and fast, table by table
from the registry, partition by partition (plain PostgreSQL) or chunk by chunk (TimescaleDB):

1. `vacuum_analyze`: `VACUUM (ANALYZE)` of every partition / chunk with dead tuples or unanalysed changes,
   the **largest dead-tuple share first**; dead tuples before and after are recorded.
2. `measure_bloat`: table and index bloat with **pgstattuple** (`pgstattuple_approx`, `pgstatindex`) where
   the extension is installed, the standard catalog estimate otherwise.
3. `reindex_bloated`: drops invalid `*_ccnew` / `*_ccold` leftovers of an interrupted concurrent reindex,
   then `REINDEX INDEX CONCURRENTLY` of the indexes **above the bloat threshold only** (and above the minimum
   size). A hypertable's own index cannot be reindexed concurrently, so its chunks' indexes are rebuilt one by one.
4. `timescaledb_upkeep` (TimescaleDB mode): compresses chunks older than the table's policy interval that are
   not compressed yet (`convert_to_columnstore` on 2.18+, `compress_chunk` before), refreshes the continuous
   aggregates, reports chunk counts, compression ratio and the extension's jobs that **failed or never ran**.
   `plain_upkeep` (plain PostgreSQL): creates the coming months' partitions and refreshes the materialized
   views `CONCURRENTLY`. The task of the other mode is skipped.
5. `usage_report`: slowest statements from `pg_stat_statements` (top N by mean time over 1 s) and the
   database and table sizes with growth since the last run.
6. `summary`: the closing before/after table. Fails the run if any object or step failed.

Every statement runs with `lock_timeout` (default 5 s) and `statement_timeout` (default 60 min) on an
autocommit connection. **A table another session holds is skipped and recorded, never waited on**; next week
takes it. Once one partition, chunk or index of a table is refused its lock, the step skips the rest of that
table and writes one `skipped` record for it: how many objects were skipped and the session holding the lock
(pid, application_name, state). Everything goes to `ops.maintenance_log` (run_id = the Airflow run id; action,
object, status `done/skipped/failed/dry_run/measured`, before/after JSON, seconds, message).

**Schedule.** Sundays 03:00 Asia/Seoul (after the 02:00 backup); one run at a time, no catch-up.

**Manual runs.** Trigger with a conf such as
```json
{"dry_run": true, "tables": ["ohlcv_data", "factor_scores"], "bloat_threshold_pct": 25,
 "lock_timeout_s": 5, "statement_timeout_min": 60}
```
`dry_run` measures and records what *would* be done (`status = dry_run`) and changes nothing else. Other
params: `min_index_kb` (smaller indexes are never rebuilt), `slow_query_min_ms`, `slow_query_top_n`,
`months_ahead` (plain-mode partitions).

**Reading the logs.** Each step ends with a table of its records; `summary` prints the counts per action
and status and the before/after table. In SQL: `SELECT action, object_name, status, before, after, message
FROM ops.maintenance_log WHERE run_id = '<run id>' ORDER BY id;`

**When it fails.**
- *skipped, "lock not granted within lock_timeout"*: not a failure. Something held the table (a long
  transaction, a migration). If the same table is skipped every week, find the holder in `pg_locks` /
  `pg_stat_activity`.
- *failed, "cancelled by statement_timeout"*: the object needs a longer window. Trigger a manual run with only
  that table and a higher `statement_timeout_min`.
- *reindex failed*: the invalid `<index>_ccnew` it left is dropped at once (and next week at the latest).
  An invalid index *not* named `_ccnew`/`_ccold` is reported, never dropped: decide by hand.
- *timescaledb_upkeep: jobs that failed or never ran*: check `timescaledb.max_background_workers` and
  `timescaledb_information.job_errors`; this run compressed and refreshed what the jobs missed.
- *"ops.maintenance_log does not exist"*: the schema was never applied; run `migrate_sqlite_to_postgres`.
- Connection errors: the task retries by itself; everything it does is idempotent.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from quantdbops import HEAVY_DB_POOL
from quantdbops.dag_policy import cron, quant_dag
from quantdbops.maintenance.params import maintenance_params
from quantdbops.operators.maintenance import (
    MaintenanceSummaryOperator,
    MeasureBloatOperator,
    PlainUpkeepOperator,
    PrepareMaintenanceOperator,
    ReindexBloatedOperator,
    TimescaleUpkeepOperator,
    UsageReportOperator,
    VacuumAnalyzeOperator,
)


# statement_timeout (at most 120 min) always ends a statement before Airflow's timeout kills the task.
@quant_dag("maintenance", schedule=cron("0 3 * * 0"), doc_md=__doc__, params=maintenance_params(),
           execution_timeout=timedelta(hours=3))
def postgres_maintenance_weekly() -> None:
    prepare = PrepareMaintenanceOperator(task_id="prepare", retries=0)
    # Steps run one after another (vacuum first, so bloat is measured on fresh statistics); each later
    # step runs even when an earlier one failed, and summary fails the run if any did.
    bloat = MeasureBloatOperator(task_id="measure_bloat", pool=HEAVY_DB_POOL, trigger_rule="all_done")
    steps = [
        VacuumAnalyzeOperator(task_id="vacuum_analyze", pool=HEAVY_DB_POOL),
        bloat,
        ReindexBloatedOperator(task_id="reindex_bloated", measured=bloat.output, pool=HEAVY_DB_POOL,
                               trigger_rule="all_done"),
        TimescaleUpkeepOperator(task_id="timescaledb_upkeep", pool=HEAVY_DB_POOL, trigger_rule="all_done"),
        PlainUpkeepOperator(task_id="plain_upkeep", pool=HEAVY_DB_POOL, trigger_rule="all_done"),
        UsageReportOperator(task_id="usage_report", trigger_rule="all_done"),
    ]
    summary = MaintenanceSummaryOperator(task_id="summary", step_task_ids=[s.task_id for s in steps],
                                         trigger_rule="all_done")
    prepare >> steps[0]
    for upstream, downstream in itertools.pairwise(steps):
        upstream >> downstream
    steps[-1] >> summary


dag = postgres_maintenance_weekly()

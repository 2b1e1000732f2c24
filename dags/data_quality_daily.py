"""
# Daily data quality of `quant_platform`

**What it does.** Runs the seeds' data-quality checks on the target database (connection
`quant_postgres`), per region, as set-based SQL (`include/sql/quality/`), one task per check, and records
every result in `ops.quality_results` (run, check, region, table, severity, violation count, threshold,
passed, up to `sample_size` sample rows as JSON) so trends can be charted. `report` then logs one summary
table and the sample rows of every failing check, and fails the run if an **error**-level check failed.

**Schedule.** Daily at 06:00 Asia/Seoul, and whenever the migration updates the Asset
`quant_platform_market_data`. One run at a time.

**Trigger.** From the trigger form, or with a conf such as
```json
{"regions": ["KR"], "checks": ["missing_dates", "price_anomalies"], "z_threshold": 3.0,
 "gap_threshold_days": 3, "lookback_days": 30, "max_age_days": 7, "as_of": "2025-10-17"}
```
`lookback_days` (default 30) limits the checks to rows dated `as_of - N .. as_of`; `0` checks the whole
history. `as_of` defaults to the run's logical date (Seoul).

**The checks and what to do when one fires.**
- `missing_dates` (warning): calendar gaps longer than `gap_threshold_days` between two bars of a ticker.
  Market holidays and trading halts cause some; otherwise backfill the ticker's range from the collector.
- `duplicates` (error): rows sharing a natural key, including near-duplicates (ticker case/whitespace,
  timeframe `1d`/`daily` vs `D`). Keep one row per key (the earliest), delete the others, find the writer.
- `price_anomalies` (warning): daily returns with |z| above `z_threshold` within their ticker. Check for a
  split or dividend, compare with another source; correct or delete the bar if it is wrong.
- `volume_anomalies` (warning): the same for volumes.
- `null_required` (error): NULLs in required columns. Re-collect or re-migrate the rows.
- `ohlcv_rules` (error): high below open/close, low above them, prices <= 0, negative volume. Re-collect.
- `freshness` (error): a region's newest bar is older than `max_age_days`. The collector or the migration
  stopped: check their runs first.
- `referential` (error): rows whose ticker is not in `tickers`. Add the ticker (delisted ones too) or
  delete the rows.

`null_required`, `ohlcv_rules` and `freshness` are decided by the common-sql provider's
`SQLColumnCheckOperator` (per column: `null_check`, `min`, `max`) and `SQLTableCheckOperator` (per row:
`high >= greatest(open, close)`, `low <= least(open, close)`, `high >= low`), one per table and region, with
the region and window as their `partition_clause`; only when one of them fails does the check's SQL file run,
for the exact count and the sample rows.

**Reading the logs.** Each `check_<name>` task logs its own table (per table and region: violations,
seconds, and for the provider-decided checks which provider check failed with its value, e.g.
`volume.min=-7`, `low.null_check=2`); `report` logs the summary and the samples. A failed check *task* (not
a failed check) means the database was unreachable: it retries by itself. `report` never retries.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag

from quantdbops import HEAVY_DB_POOL, PLATFORM_TZ
from quantdbops.assets import MIGRATED_DATA
from quantdbops.dag_policy import default_args, run_failure_alert
from quantdbops.operators.quality import QualityCheckOperator, QualityReportOperator
from quantdbops.quality.checks import CHECK_NAMES
from quantdbops.quality.params import quality_params


@dag(
    dag_id="data_quality_daily",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 6 * * *", timezone=PLATFORM_TZ),
                                 assets=MIGRATED_DATA),
    start_date=pendulum.datetime(2025, 1, 1, tz=PLATFORM_TZ),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    params=quality_params(),
    default_args=default_args(),
    on_failure_callback=run_failure_alert(),
    tags=["quant-db-ops", "data-quality", "scheduled"],
)
def data_quality_daily() -> None:
    checks = [QualityCheckOperator(task_id=f"check_{name}", check_name=name, pool=HEAVY_DB_POOL)
              for name in CHECK_NAMES]
    checks >> QualityReportOperator(task_id="report")


dag = data_quality_daily()

"""
# Daily data quality of `quant_platform`

**What it does.** Runs the data-quality checks on the target database (connection `quant_postgres`), one
task per check. Each check is one set-based SQL statement per table (`include/sql/quality/`) covering every
requested region at once; it records one result per table and region in `ops.quality_results` (run, check,
region, table, severity, violation count, threshold, passed, up to `sample_size` sample rows as JSON, and in
`details` the statement's seconds and the violations per rule or column) so trends can be charted. `report`
then logs one summary table and the sample rows of every failing check, and fails the run if an
**error**-level check failed.

**Schedule.** Daily at 06:00 Asia/Seoul, and whenever the migration updates the Asset
`quant_platform_market_data`. One run at a time.

**Trigger.** From the trigger form, or with a conf such as
```json
{"regions": ["KR"], "checks": ["missing_dates", "price_anomalies"], "z_threshold": 3.0,
 "gap_threshold_days": 3, "lookback_days": 30, "max_age_days": 7, "as_of": "2025-10-17"}
```
`lookback_days` (default 30) limits the checks to rows dated `as_of - N .. as_of`; `0` checks the whole
history. `as_of` defaults to the run's logical date (Seoul).

**The checks, what each finds, and what to do when one fires.**
- `missing_dates` (warning): A gap is two consecutive 'D' bars of a ticker more than `gap_threshold_days` calendar
  days apart.
  Market holidays and trading halts cause some; otherwise backfill the ticker's range from the collector.
- `duplicates` (error): A duplicate is two or more rows of a table with the same natural key after normalising its
  spelling (timeframe '1d'/'daily' = 'D', ticker case and surrounding spaces).
  Keep one row per key (the earliest), delete the others, find the writer.
- `price_anomalies` (warning): A price anomaly is a daily close-to-close return whose |z| exceeds `z_threshold`, z
  measured against the mean and sample standard deviation of that ticker's returns over the checked window.
  Check for a split or dividend, compare with another source; correct or delete the bar if it is wrong.
- `volume_anomalies` (warning): A volume anomaly is a daily volume whose |z| exceeds `z_threshold`, z measured
  against the mean and sample standard deviation of that ticker's volumes over the checked window.
  The same as for prices.
- `null_required` (error): A missing value is a NULL in a column the registry marks required.
  Re-collect or re-migrate the rows.
- `ohlcv_rules` (error): A broken bar is an ohlcv_data row that breaks a rule the registry declares for it: a price
  <= 0, high below open, close or low, low above open or close, volume < 0, or a region or timeframe outside its
  vocabulary.
  Re-collect the bars (the sample rows name the broken rules).
- `row_rules` (error): A broken row is a row of any other table that breaks a rule the registry declares for it (a
  vocabulary, a positive amount, ...), the same rules the loader quarantines a source row for.
  Correct or delete the rows, or re-migrate that table and region.
- `freshness` (error): A stale region is one whose newest bar up to the checked day is more than `max_age_days`
  days old, or which has no bar at all.
  The collector or the migration stopped: check their runs first.
- `referential` (error): An orphan is a row naming a ticker that is not in tickers (with the row's region where it
  has one).
  Add the ticker (delisted ones too) or delete the rows.

The row rules are the table registry's own declaration, the rules the migration quarantines a source row
for and the schema's CHECK constraints: a rule PostgreSQL enforces as a validated constraint (or a NOT NULL
column) cannot be broken, and its check reads nothing; a rule added `NOT VALID` over old rows is read and its
old rows listed.

**Reading the logs.** Each `check_<name>` task logs the check's definition with the run's values, what it
checked, and a table per table and region: violations, the statement's seconds, and the violations per rule
or column (e.g. `chk_ohlcv_volume 1, chk_ohlcv_prices 1`). `report` logs the summary and the samples. A failed
check *task* (not a failed check) means the database was unreachable or the task ran past its timeout: it retries by
itself. `report` never retries.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule

from quantdbops import HEAVY_DB_POOL
from quantdbops.assets import MIGRATED_DATA
from quantdbops.dag_policy import cron, quant_dag
from quantdbops.operators.quality import QualityCheckOperator, QualityReportOperator
from quantdbops.quality.checks import CHECK_NAMES
from quantdbops.quality.params import quality_params


@quant_dag("data-quality", schedule=AssetOrTimeSchedule(timetable=cron("0 6 * * *"), assets=MIGRATED_DATA),
           doc_md=__doc__, params=quality_params())
def data_quality_daily() -> None:
    checks = [QualityCheckOperator(task_id=f"check_{name}", check_name=name, pool=HEAVY_DB_POOL)
              for name in CHECK_NAMES]
    checks >> QualityReportOperator(task_id="report")


dag = data_quality_daily()

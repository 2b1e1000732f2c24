"""
# Migration: Spock SQLite → PostgreSQL / TimescaleDB

**What it does.** Reads the platform's `spock_local.db` (connection `spock_sqlite`) and loads every
selected table into `quant_platform` (connection `quant_postgres`), one task per table, tickers first.
Rows stream from SQLite straight into PostgreSQL `COPY`; each source column is mapped explicitly (text
dates and ISO timestamps, 0/1 booleans, REAL → exact NUMERIC, the region of region-less rows from
`tickers`, timeframe `1d` → `D`). A row that breaks one of the table's rules (required columns, value
types, prices > 0, high/low bounding open/close, volume ≥ 0, vocabularies such as region and timeframe,
text PostgreSQL can hold, a known ticker, a unique key) is **quarantined** in `ops.migration_rejects`
with its reason, the run id and the raw row: nothing is dropped silently, and no single cell can fail a
table. Then `validate` proves parity (row counts, date coverage, the same rules over the target, NULLs,
referential integrity, TimescaleDB features or partitions, indexes, sample rows, and a checksum of every
row per table, region and month), `refresh_aggregates` refreshes the monthly, quarterly, yearly and daily
aggregates over the loaded tables, and `benchmark` times the platform's query SLOs. Works on TimescaleDB
and on plain PostgreSQL (RDS): the `prepare` log says which mode it found.

**Schedule.** Manual only; one run at a time.

**Trigger.** Use the trigger form, or the API/CLI with a conf such as
```json
{"regions": ["KR", "US"], "tables": ["tickers", "ohlcv_data"],
 "start_date": "2024-01-01", "end_date": "2025-10-17", "dry_run": false}
```
`dry_run` defaults to **true**: read, map and check everything and pass every row and every reject through
PostgreSQL into temporary tables that are rolled back, so it fails wherever the real run would, writing
nothing. Run it first, read the reject counts, then trigger again with `dry_run: false`. `source_path`
overrides the connection's file (any absolute path; the file is only ever opened read-only).
`prune_tickers` (default false): tickers are merged, never emptied; with it, the `prune_tickers` task
(after every load) deletes target tickers of the selected regions that the source no longer has, where no
other table references them, and lists those it keeps.

**Reading the logs.** `prepare`: source tables and row counts, tables not migrated, the database mode.
`load_<table>`: progress every 5 s (rows, rows/s, ETA), then a per-region table (source rows, loaded,
rejected by reason). `validate`: the verdict and its time, a line per table, the time of each family of
checks. `refresh_aggregates`: each aggregate with its rows. `summary`: the per-table totals.

**When it fails.**
- *prepare* "not an SQLite database" / "does not exist" / "lacks columns": the source file is wrong or not
  mounted on the workers. Nothing was written. Fix the connection or `source_path`, trigger again.
- *load_<table>*: each table is replaced in one transaction, so a failed or killed load changed nothing.
  Database unreachable: the task retries by itself. Otherwise read the error, fix, clear the task.
- *validate* (no retries): the message lists what differs down to the rows and what to do. Rejects of a
  slice are replaced with it, so clearing the affected `load_<table>` tasks and `validate` heals a stale
  reject; tickers left by an earlier load of another file need `prune_tickers`.
- *refresh_aggregates*: the data is loaded, only the aggregates are stale; clear the task.
- *benchmark*: a query past its critical threshold. The data is migrated; tune the database (ANALYZE,
  indexes, memory) before go-live and re-run only `benchmark`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import task

from quantdbops import HEAVY_DB_POOL
from quantdbops.assets import MIGRATED_DATA
from quantdbops.dag_policy import quant_dag
from quantdbops.migration.params import migration_params
from quantdbops.operators.migration import (
    MigrateTableOperator,
    MigrationSummaryOperator,
    PrepareMigrationOperator,
    PruneTickersOperator,
    QuerySloOperator,
    RefreshAggregatesOperator,
    ValidateMigrationOperator,
)
from quantdbops.registry import migratable_tables


@quant_dag("migration", doc_md=__doc__, params=migration_params(), execution_timeout=timedelta(hours=6))
def migrate_sqlite_to_postgres() -> None:
    prepare = PrepareMigrationOperator(task_id="prepare")
    # Every other table runs after tickers unless tickers FAILED: when tickers is not selected (skipped),
    # the others load against the tickers already in the target.
    loads = {
        t.name: MigrateTableOperator(task_id=f"load_{t.name}", table_name=t.name, pool=HEAVY_DB_POOL,
                                     trigger_rule="all_success" if t.name == "tickers" else "none_failed")
        for t in migratable_tables()
    }
    loaded = [op.output for op in loads.values()]
    prune = PruneTickersOperator(task_id="prune_tickers", trigger_rule="none_failed")
    validate = ValidateMigrationOperator(task_id="validate", loads=loaded, trigger_rule="none_failed")
    aggregates = RefreshAggregatesOperator(task_id="refresh_aggregates", loads=loaded, pool=HEAVY_DB_POOL,
                                           trigger_rule="none_failed")
    benchmark = QuerySloOperator(task_id="benchmark", trigger_rule="none_failed")
    summary = MigrationSummaryOperator(task_id="summary", prepared=prepare.output, loads=loaded,
                                       aggregates=aggregates.output)

    @task(outlets=[MIGRATED_DATA], trigger_rule="none_failed")
    def publish(params: dict | None = None) -> str:
        """Tell the data-quality DAG there is new data (not after a dry run)."""
        from airflow.sdk.exceptions import AirflowSkipException

        if (params or {}).get("dry_run", True):
            raise AirflowSkipException("dry run: no data changed, the quality DAG is not triggered")
        return MIGRATED_DATA.name

    # Foreign-key order: tickers first; the other tables only reference tickers, so they may run side by
    # side (the quant_db_heavy pool caps how many hit the database at once).
    prepare >> loads["tickers"]
    for name, op in loads.items():
        if name != "tickers":
            loads["tickers"] >> op
        op >> prune
    # Pruning tickers waits for every load: a ticker is kept while rows of any table still name it. The
    # aggregates are refreshed beside validation (they read the loaded tables, they do not change them).
    prune >> [validate, aggregates]
    [validate, aggregates] >> benchmark >> summary >> publish()


dag = migrate_sqlite_to_postgres()

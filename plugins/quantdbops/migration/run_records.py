"""What a table load records beside the data, in the same transaction: the quarantined rows with their reason
and raw source row (``ops.migration_rejects``), the per-day checksums validation compares
(``ops.migration_checksums``), and one row per table and region of the run (``ops.migration_runs``)."""

from __future__ import annotations

import json
import sqlite3
from datetime import date

import psycopg
from psycopg import sql

from quantdbops import REGIONS
from quantdbops.migration.checksum import ROW_FORMAT
from quantdbops.migration.producer import ProducerResult
from quantdbops.migration.results import TableLoadResult
from quantdbops.migration.source import raw_rows
from quantdbops.migration.source_plan import ALL_REGIONS, UNKNOWN_REGION, SliceFilter
from quantdbops.registry import Table
from quantdbops.sqlfiles import read_sql

DRY_REJECTS = "_dry_run_rejects"


def ops_slice_where(table: Table, flt: SliceFilter, regions: list[str], time_col: str) -> tuple[sql.Composed, list]:
    """The ops rows of the slices a load replaces, and any of the table filed under a region that is no
    slice at all (written by an earlier version under the spelling a source row carried): those are
    replaced by whichever load of the table runs next, so a re-run always converges."""
    conds = [sql.SQL("table_name = %s"), sql.SQL("(region = ANY(%s) OR region <> ALL(%s))")]
    params: list[object] = [table.name, regions, [*REGIONS, ALL_REGIONS, UNKNOWN_REGION]]
    if not table.time_column:
        return sql.SQL(" AND ").join(conds), params
    if flt.start_date:
        conds.append(sql.SQL("{} >= %s").format(sql.Identifier(time_col)))
        params.append(flt.start_date.isoformat())
    if flt.end_date:
        conds.append(sql.SQL("{} < %s").format(sql.Identifier(time_col)))
        params.append(date.fromordinal(flt.end_date.toordinal() + 1).isoformat())
    return sql.SQL(" AND ").join(conds), params


def write_records(pg: psycopg.Connection, sconn: sqlite3.Connection, table: Table, flt: SliceFilter,
               run_id: str, regions: list[str], result: ProducerResult, *, dry_run: bool = False) -> None:
    """Rejects and checksums of the slices, replaced in the load's own transaction; a dry run writes its
    rejects into a temporary table of the same types (so PostgreSQL reads every raw row) and no checksums."""
    if dry_run:
        pg.execute(sql.SQL(read_sql("migration/create_dry_rejects_table.sql")).format(
            table=sql.Identifier(DRY_REJECTS)))
        rejects = sql.Identifier(DRY_REJECTS)
    else:
        slice_regions_all = sorted(set(regions) | set(result.stats) | {UNKNOWN_REGION})
        where, params = ops_slice_where(table, flt, slice_regions_all, "time_value")
        pg.execute(sql.SQL(read_sql("migration/delete_slice_rejects.sql")).format(slices=where), params)
        where, params = ops_slice_where(table, flt, slice_regions_all, "day")
        pg.execute(sql.SQL(read_sql("migration/delete_slice_checksums.sql")).format(slices=where), params)
        rejects = sql.Identifier("ops", "migration_rejects")
    if result.rejects:
        raw = raw_rows(sconn, table.source or table.name, [r[0] for r in result.rejects])
        time_key = None
        if table.time_column:
            col = table.column(table.time_column)
            time_key = table.derived.get(col.name) or col.source_column
        copy_rejects = sql.SQL(read_sql("migration/copy_rejects.sql")).format(table=rejects)
        with pg.cursor() as cur, cur.copy(copy_rejects) as copy:
            for rowid, region, reason, detail in result.rejects:
                row = raw.get(rowid, {})
                tv = row.get(time_key) if time_key else None
                copy.write_row((run_id, table.name, region, rowid, reason, detail,
                                json.dumps(row, default=str), tv if isinstance(tv, str) or tv is None else str(tv)))
    if result.rows and not dry_run:
        with pg.cursor() as cur, cur.copy(read_sql("migration/copy_checksums.sql")) as copy:
            for (region, day), n in result.rows.items():
                copy.write_row((table.name, region, day, n, result.sums[(region, day)], run_id, ROW_FORMAT))


def record_run(pg: psycopg.Connection, result: TableLoadResult, flt: SliceFilter) -> None:
    params = json.dumps({"regions": flt.regions, "start_date": str(flt.start_date or ""),
                         "end_date": str(flt.end_date or "")})
    with pg.transaction():
        for region, st in result.regions.items():
            pg.execute(
                read_sql("migration/upsert_migration_run.sql"),
                (result.run_id, result.table, region, st.source_rows, st.loaded, st.rejected_rows,
                 json.dumps(dict(st.rejected)), round(result.seconds, 3), round(result.rows_per_sec), params),
            )

"""Loading one table: its selected slices of the target replaced by the source's rows in ONE transaction.

Delete (or truncate) the slices, COPY the mapped and checked rows the producers send, write the rejects, the
per-day checksums and the run record, commit. A task killed halfway leaves the previous content untouched,
so a re-run always ends in exact parity with no duplicates. Tables other tables reference (tickers) are
merged through a staging table instead of deleted.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from quantdbops import REGIONS
from quantdbops.io.pg import DbMode
from quantdbops.migration.producer_pool import (
    PARALLEL_MIN_ROWS,
    PROGRESS_SECONDS,
    configured_workers,
    server_is_local,
    stream,
)
from quantdbops.migration.provenance import record_merged_keys
from quantdbops.migration.results import SliceStats, TableLoadResult
from quantdbops.migration.run_records import record_run, write_records
from quantdbops.migration.source import inspect_unknown_columns, source_file
from quantdbops.migration.source_plan import COPY_OPTIONS, SliceFilter, TablePlan, slice_regions
from quantdbops.migration.source_queries import count_rows, find_duplicates, known_tickers, time_range
from quantdbops.registry import LoadMode, Table
from quantdbops.schema import partitions, render
from quantdbops.sqlfiles import read_sql

log = logging.getLogger(__name__)

DRY_TARGET = "_dry_run_target"


def _delete_slices(pg: psycopg.Connection, table: Table, flt: SliceFilter) -> str:
    """Remove the target rows the load replaces; TRUNCATE when that is the whole table."""
    ident = sql.Identifier("public", table.name)
    whole = (flt.regions is None or not table.has_region or set(flt.regions) >= set(REGIONS)) \
        and not (flt.start_date or flt.end_date)
    if whole:
        pg.execute(sql.SQL(read_sql("migration/truncate_table.sql")).format(table=ident))
        return "truncated"
    conds, params = [], []
    if table.has_region and flt.regions is not None:
        conds.append(sql.SQL("region = ANY(%s)"))
        params.append(list(flt.regions))
    if table.time_column and flt.start_date:
        conds.append(sql.SQL("{} >= %s").format(sql.Identifier(table.time_column)))
        params.append(flt.start_date)
    if table.time_column and flt.end_date:
        conds.append(sql.SQL("{} <= %s").format(sql.Identifier(table.time_column)))
        params.append(flt.end_date)
    where = sql.SQL(" AND ").join(conds) if conds else sql.SQL("TRUE")
    cur = pg.execute(sql.SQL("DELETE FROM {} WHERE {}").format(ident, where), params)
    return f"deleted {cur.rowcount:,} rows"


def drop_secondary_indexes(pg: psycopg.Connection, table: Table) -> list[tuple[str, str]]:
    """Drop the table's indexes other than its primary/unique keys; returns (name, definition) of each."""
    dropped = [(r[0], r[1]) for r in pg.execute(read_sql("migration/select_secondary_indexes.sql"),
                                                (f"public.{table.name}",))]
    for name, _ in dropped:
        pg.execute(sql.SQL(read_sql("migration/drop_index.sql")).format(index=sql.Identifier("public", name)))
    return dropped


def recreate_indexes(pg: psycopg.Connection, dropped: list[tuple[str, str]]) -> None:
    """Recreate what ``drop_secondary_indexes`` dropped, partitions included."""
    for _, definition in dropped:
        # A partitioned parent's definition says ON ONLY, which would skip the partitions.
        pg.execute(definition.replace(" ON ONLY ", " ON ", 1))


def load_table(
    sconn: sqlite3.Connection,
    pg: psycopg.Connection | None,
    table: Table,
    flt: SliceFilter,
    *,
    run_id: str,
    mode: DbMode,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    progress_seconds: float = PROGRESS_SECONDS,
    workers: int | None = None,
    parallel_min_rows: int = PARALLEL_MIN_ROWS,
) -> TableLoadResult:
    """Load (or, dry, only read, map, check and pass through PostgreSQL's input functions) one table's selected
    slices. ``pg`` is not autocommit; with ``pg`` None a dry run checks the source side only.

    A dry run sends the same COPY text and the same reject rows as a load, into temporary tables of the same
    shape (types, key, rules) in a transaction it rolls back: a value PostgreSQL would refuse fails the dry run
    as it would fail the load, and nothing durable is written.
    """
    say = progress or log.info
    started = time.monotonic()
    plan = TablePlan(table)
    if pg is not None and pg.autocommit:
        raise ValueError("load_table needs a transactional connection: the slices are replaced atomically")
    path = source_file(sconn)
    workers = configured_workers(server_is_local(pg)) if workers is None else workers
    known = known_tickers(sconn, pg, from_source=dry_run) if (table.ticker_column or table.ticker_refs) else None
    if pg is not None:
        pg.commit()  # end the read above: the load below must be a transaction of its own, not a savepoint
    dups = find_duplicates(sconn, plan, flt)
    total = count_rows(sconn, plan, flt)
    regions = slice_regions(table, flt)
    if pg is None:
        say(f"{table.name}: {total:,} source rows to read (dry run without a database: source side only)")
        result = stream(sconn, path, table, flt, known, dups, total, lambda _b: None, say, workers,
                         progress_seconds, parallel_min_rows)
    else:
        say(f"{table.name}: {total:,} source rows to read "
            + ("(dry run: into temporary tables, rolled back)" if dry_run else f"into {mode.name} mode"))
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in plan.query(flt).columns)
        with pg.transaction(force_rollback=dry_run):
            pg.execute(read_sql("migration/set_load_work_mem.sql"))
            deferred: list[tuple[str, str]] = []
            with pg.cursor() as cur:
                if dry_run:
                    cur.execute(sql.SQL(render.temporary_table_sql(table, DRY_TARGET)))
                    target = sql.Identifier(DRY_TARGET)
                else:
                    if not mode.timescaledb and table.partitioned:
                        span = time_range(sconn, plan, flt)
                        made = partitions.ensure_partitions(pg, table, *span) if span else []
                        if made:
                            say(f"{table.name}: created {len(made)} partitions ({made[0]} .. {made[-1]})")
                    if table.load_mode is LoadMode.MERGE:
                        cur.execute(sql.SQL(read_sql("migration/create_stage_table.sql")).format(
                            table=sql.Identifier("public", table.name)))
                        target = sql.Identifier("_stage")
                    else:
                        action = _delete_slices(pg, table, flt)
                        say(f"{table.name}: replacing slices {', '.join(regions)}: {action}")
                        if action == "truncated":
                            # The whole table is rewritten: building its secondary indexes once afterwards
                            # is much cheaper than updating them row by row (the key stays, it checks the rows).
                            deferred = drop_secondary_indexes(pg, table)
                        target = sql.Identifier("public", table.name)
                copy_rows = sql.SQL(read_sql("migration/copy_rows.sql")).format(
                    target=target, columns=cols, options=sql.SQL(COPY_OPTIONS))
                with cur.copy(copy_rows) as copy:
                    result = stream(sconn, path, table, flt, known, dups, total, copy.write, say, workers,
                                     progress_seconds, parallel_min_rows)
                if deferred:
                    t0 = time.monotonic()
                    recreate_indexes(pg, deferred)
                    say(f"{table.name}: rebuilt {len(deferred)} secondary indexes in {time.monotonic() - t0:.1f}s")
                if table.load_mode is LoadMode.MERGE and not dry_run:
                    _merge(cur, table, plan.query(flt).columns)
                    record_merged_keys(pg, table, sql.Identifier("_stage"), run_id)
            write_records(pg, sconn, table, flt, run_id, regions, result, dry_run=dry_run)
    stats = {r: SliceStats(n, loaded, rej) for r, (n, loaded, rej) in result.stats.items()}
    out = TableLoadResult(table=table.name, run_id=run_id, dry_run=dry_run or pg is None, regions=stats,
                          seconds=time.monotonic() - started, mode=mode.name,
                          unknown_columns=inspect_unknown_columns(sconn, table))
    if not dry_run and pg is not None:
        record_run(pg, out, flt)
    return out


def _merge(cur: psycopg.Cursor, table: Table, columns: tuple[str, ...]) -> None:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in columns if c not in table.key)
    cur.execute(sql.SQL(read_sql("migration/merge_stage_rows.sql")).format(
        table=sql.Identifier("public", table.name), columns=cols,
        key=sql.SQL(", ").join(sql.Identifier(c) for c in table.key), updates=updates))

"""Stream one table from SQLite into PostgreSQL ``COPY``: mapped, checked, quarantined, checksummed.

A table's selected region slices are replaced in ONE transaction: delete (or truncate) the slices, COPY
the rows, write the rejects, the per-day checksums and the run record, commit. A task killed halfway
leaves the previous content untouched, so a re-run always ends in exact parity with no duplicates.
Tables other tables reference (tickers) are merged through a staging table instead of deleted.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from multiprocessing.connection import wait

import psycopg
from psycopg import sql

from quantdbops import REGIONS
from quantdbops.io.pg import DbMode
from quantdbops.migration.checksum import ROW_FORMAT
from quantdbops.migration.plan import ALL_REGIONS, COPY_OPTIONS, UNKNOWN_REGION, SliceFilter, TablePlan
from quantdbops.migration.produce import ProducerResult, read_source, worker
from quantdbops.migration.provenance import record_merged_keys
from quantdbops.migration.results import SliceStats, TableLoadResult
from quantdbops.migration.source import raw_rows, source_file, source_key_is_unique
from quantdbops.registry import LoadMode, Table
from quantdbops.schema import partitions, render

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 5.0
# Tables smaller than this are read in-process: starting producer processes would cost more than it saves.
PARALLEL_MIN_ROWS = 50_000


def default_workers(server_shares_cores: bool = False) -> int:
    """Producer processes: one per core, at most 4; one fewer when PostgreSQL runs on this machine, where its
    COPY needs a core of its own (measured on 2 cores with the server local: 1 producer loads the indexed
    ohlcv_data 9 % faster than 2, and the pk-only table as fast with less CPU)."""
    cores = os.cpu_count() or 1
    return max(1, min(4, cores - 1 if server_shares_cores else cores))


PRODUCERS_ENV = "QUANT_MIGRATION_PRODUCERS"  # producer processes per big table, overriding the default
MAX_PRODUCERS = 16


def configured_workers(server_shares_cores: bool) -> int:
    """``QUANT_MIGRATION_PRODUCERS`` when set (1 to 16), else ``default_workers``."""
    raw = os.environ.get(PRODUCERS_ENV, "").strip()
    if not raw:
        return default_workers(server_shares_cores)
    n = int(raw) if raw.isdigit() else 0
    if not 1 <= n <= MAX_PRODUCERS:
        raise ValueError(f"{PRODUCERS_ENV}={raw!r} is not a number of producer processes from 1 to "
                         f"{MAX_PRODUCERS}: fix or unset it on the workers (unset: one per core, one fewer when "
                         "PostgreSQL runs on the same machine, at most 4). Nothing was loaded.")
    return n


def server_is_local(pg: psycopg.Connection | None) -> bool:
    """The connection reaches a server on this machine (a Unix socket or the loopback address)."""
    if pg is None:
        return False
    host = pg.info.host
    return host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")


def known_tickers(sconn: sqlite3.Connection, pg: psycopg.Connection | None,
                  from_source: bool) -> list[tuple[str, str]]:
    """The (ticker, region) pairs a row may reference: the target's tickers; in a dry run (``from_source``),
    where nothing was written, the target's and those the tickers load would write."""
    target: list[tuple[str, str]] = []
    if pg is not None and pg.execute("SELECT to_regclass('public.tickers')").fetchone()[0]:
        target = [tuple(r) for r in pg.execute("SELECT ticker, region FROM public.tickers")]
    if not from_source and pg is not None:
        return target
    return sorted(set(target) | set(would_load_tickers(sconn)))


def would_load_tickers(sconn: sqlite3.Connection) -> list[tuple[str, str]]:
    """The (ticker, region) of every source ticker the tickers load would write (its checks passed)."""
    from quantdbops.registry import TICKERS

    refused = {r[0] for r in read_source(source_file(sconn), TICKERS.name, SliceFilter(), None, None,
                                         find_duplicates(sconn, TablePlan(TICKERS), SliceFilter()),
                                         lambda _b: None).rejects}
    rows = sconn.execute("SELECT rowid, ticker, region FROM main.tickers")
    return [(ticker, region) for rowid, ticker, region in rows if rowid not in refused]


def find_duplicates(sconn: sqlite3.Connection, plan: TablePlan, flt: SliceFilter) -> dict[int, int]:
    """Rows whose mapped key another row already has -> the rowid kept.

    Where the source's own unique constraints make the unmapped key unique, only rows a mapping may make
    collide are looked at; a source table without such a constraint has its whole key ranked."""
    found = plan.collision_sql(flt, whole_key=not source_key_is_unique(sconn, plan.table))
    if found is None:
        return {}
    query, params = found
    return dict(sconn.execute(query, params))


def _count(sconn: sqlite3.Connection, plan: TablePlan, flt: SliceFilter) -> int:
    params: list[object] = []
    where = plan.where(flt, params)
    joins = plan.source_ticker_join() if where else ""
    return sconn.execute(f'SELECT count(*) FROM main."{plan.table.source}" s {joins} {where}', params).fetchone()[0]


def _time_range(sconn: sqlite3.Connection, plan: TablePlan, flt: SliceFilter) -> tuple[date, date] | None:
    """First and last well-formed date of the slice (plain mode creates partitions for them)."""
    expr = plan.time_source_expr()
    if expr is None:
        return None
    params: list[object] = []
    where = plan.where(flt, params)
    day = f"substr({expr}, 1, 10)"
    glob = f"date(julianday({day})) = {day}"  # real calendar dates only, as the row checks require
    where = f"{where} AND {glob}" if where else f"WHERE {glob}"
    joins = plan.source_ticker_join()
    lo, hi = sconn.execute(
        f'SELECT min(substr({expr}, 1, 10)), max(substr({expr}, 1, 10)) FROM main."{plan.table.source}" s '
        f"{joins} {where}", params).fetchone()
    if lo is None:
        return None
    try:
        return date.fromisoformat(lo), date.fromisoformat(hi)
    except ValueError:
        return None  # e.g. '2024-02-30' sorts but is no date: such rows are rejected anyway


def slice_regions(table: Table, flt: SliceFilter) -> list[str]:
    """The region slices a load of ``table`` replaces (target side)."""
    if not table.has_region:
        return [ALL_REGIONS]
    return list(flt.regions) if flt.regions is not None else list(REGIONS)


def _delete_slices(pg: psycopg.Connection, table: Table, flt: SliceFilter) -> str:
    """Remove the target rows the load replaces; TRUNCATE when that is the whole table."""
    ident = sql.Identifier("public", table.name)
    whole = (flt.regions is None or not table.has_region or set(flt.regions) >= set(REGIONS)) \
        and not (flt.start_date or flt.end_date)
    if whole:
        pg.execute(sql.SQL("TRUNCATE {}").format(ident))
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


def _ops_slice_where(table: Table, flt: SliceFilter, regions: list[str], time_col: str) -> tuple[sql.Composed, list]:
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


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Start spawned processes without making them re-run the parent's ``__main__`` script.

    Under a real Airflow worker that script is the ``airflow`` CLI, and a task process points
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN at a blocked URL: a child importing the CLI dies before it runs
    anything. The producers need nothing from ``__main__``, only ``quantdbops``.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield  # run with -m or interactively: multiprocessing does not re-run a script
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _stream(sconn: sqlite3.Connection, path: str, table: Table, flt: SliceFilter, known: list | None,
            dups: dict[int, int], total: int, write: Callable[[bytes], None], say: Callable[[str], None],
            workers: int, progress_seconds: float, parallel_min_rows: int = PARALLEL_MIN_ROWS) -> ProducerResult:
    """Run the producers (in-process, or one process per rowid range) and forward their bytes."""
    started = last = time.monotonic()
    done = 0

    def forward(data: bytes) -> None:
        nonlocal done, last
        write(data)
        done += data.count(b"\n")
        now = time.monotonic()
        if now - last >= progress_seconds:
            rate = done / (now - started)
            eta = (total - done) / rate if rate and total > done else 0.0
            say(f"{table.name}: {done:,}/{total:,} rows loaded ({100 * done / max(total, 1):.0f}%), "
                f"{rate:,.0f} rows/s, ETA {eta:.0f}s")
            last = now

    lo, hi = sconn.execute(f'SELECT min(rowid), max(rowid) FROM main."{table.source}"').fetchone()
    if workers <= 1 or total < parallel_min_rows or lo is None:
        return read_source(path, table.name, flt, None, known, dups, forward)
    step = (hi - lo) // workers + 1
    ranges = [(lo + i * step, min(hi, lo + (i + 1) * step - 1)) for i in range(workers)]
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited connections or threads
    readers, procs = [], []
    with _main_script_hidden():
        for rng in ranges:
            r, w = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=worker, args=(w, path, table.name, flt, rng, known, dups), daemon=True)
            proc.start()
            w.close()
            readers.append(r)
            procs.append(proc)
    say(f"{table.name}: {workers} producer processes over rowids {lo:,}..{hi:,}")
    total_result = ProducerResult()
    errors = []
    try:
        live = list(readers)
        while live:
            for r in wait(live):
                try:
                    data = r.recv_bytes()
                    if data:
                        forward(data)
                        continue
                    status, payload = r.recv()
                except EOFError:  # the process died without a word: its stderr (in the task log) says why
                    proc = procs[readers.index(r)]
                    proc.join(timeout=5)
                    status, payload = "error", (f"producer process {proc.pid} exited with code {proc.exitcode} "
                                                "before it finished; its traceback is above in this log")
                live.remove(r)
                if status == "ok":
                    total_result.merge(payload)
                else:
                    errors.append(payload)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    if errors:
        raise RuntimeError(f"a producer of {table.name} failed:\n{errors[0]}")
    return total_result


def drop_secondary_indexes(pg: psycopg.Connection, table: Table) -> list[tuple[str, str]]:
    """Drop the table's indexes other than its primary/unique keys; returns (name, definition) of each."""
    dropped = [(r[0], r[1]) for r in pg.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary AND NOT x.indisunique ORDER BY 1",
        (f"public.{table.name}",))]
    for name, _ in dropped:
        pg.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier("public", name)))
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
    total = _count(sconn, plan, flt)
    regions = slice_regions(table, flt)
    if pg is None:
        say(f"{table.name}: {total:,} source rows to read (dry run without a database: source side only)")
        result = _stream(sconn, path, table, flt, known, dups, total, lambda _b: None, say, workers,
                         progress_seconds, parallel_min_rows)
    else:
        say(f"{table.name}: {total:,} source rows to read "
            + ("(dry run: into temporary tables, rolled back)" if dry_run else f"into {mode.name} mode"))
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in plan.query(flt).columns)
        with pg.transaction(force_rollback=dry_run):
            pg.execute("SET LOCAL maintenance_work_mem = '256MB'")
            deferred: list[tuple[str, str]] = []
            with pg.cursor() as cur:
                if dry_run:
                    cur.execute(sql.SQL(render.temporary_table_sql(table, DRY_TARGET)))
                    target = sql.Identifier(DRY_TARGET)
                else:
                    if not mode.timescaledb and table.partitioned:
                        span = _time_range(sconn, plan, flt)
                        made = partitions.ensure_partitions(pg, table, *span) if span else []
                        if made:
                            say(f"{table.name}: created {len(made)} partitions ({made[0]} .. {made[-1]})")
                    if table.load_mode is LoadMode.MERGE:
                        cur.execute(sql.SQL("CREATE TEMP TABLE _stage (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP")
                                    .format(sql.Identifier("public", table.name)))
                        target = sql.Identifier("_stage")
                    else:
                        action = _delete_slices(pg, table, flt)
                        say(f"{table.name}: replacing slices {', '.join(regions)}: {action}")
                        if action == "truncated":
                            # The whole table is rewritten: building its secondary indexes once afterwards
                            # is much cheaper than updating them row by row (the key stays, it checks the rows).
                            deferred = drop_secondary_indexes(pg, table)
                        target = sql.Identifier("public", table.name)
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN " + COPY_OPTIONS).format(target, cols)) as copy:
                    result = _stream(sconn, path, table, flt, known, dups, total, copy.write, say, workers,
                                     progress_seconds, parallel_min_rows)
                if deferred:
                    t0 = time.monotonic()
                    recreate_indexes(pg, deferred)
                    say(f"{table.name}: rebuilt {len(deferred)} secondary indexes in {time.monotonic() - t0:.1f}s")
                if table.load_mode is LoadMode.MERGE and not dry_run:
                    _merge(cur, table, plan.query(flt).columns)
                    record_merged_keys(pg, table, sql.Identifier("_stage"), run_id)
            _write_ops(pg, sconn, table, flt, run_id, regions, result, dry_run=dry_run)
    stats = {r: SliceStats(n, loaded, rej) for r, (n, loaded, rej) in result.stats.items()}
    out = TableLoadResult(table=table.name, run_id=run_id, dry_run=dry_run or pg is None, regions=stats,
                          seconds=time.monotonic() - started, mode=mode.name,
                          unknown_columns=inspect_unknown_columns(sconn, table))
    if not dry_run and pg is not None:
        _record_run(pg, out, flt)
    return out


DRY_TARGET = "_dry_run_target"
DRY_REJECTS = "_dry_run_rejects"


def _merge(cur: psycopg.Cursor, table: Table, columns: tuple[str, ...]) -> None:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in columns if c not in table.key)
    cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM _stage ON CONFLICT ({}) DO UPDATE SET {}").format(
        sql.Identifier("public", table.name), cols, cols,
        sql.SQL(", ").join(sql.Identifier(c) for c in table.key), updates))


def _write_ops(pg: psycopg.Connection, sconn: sqlite3.Connection, table: Table, flt: SliceFilter,
               run_id: str, regions: list[str], result: ProducerResult, *, dry_run: bool = False) -> None:
    """Rejects and checksums of the slices, replaced in the load's own transaction; a dry run writes its
    rejects into a temporary table of the same types (so PostgreSQL reads every raw row) and no checksums."""
    if dry_run:
        pg.execute(sql.SQL("CREATE TEMP TABLE {} (run_id text, table_name text, region text, source_rowid bigint, "
                           "reason text, detail text, raw_row jsonb, time_value text) ON COMMIT DROP")
                   .format(sql.Identifier(DRY_REJECTS)))
        rejects = sql.Identifier(DRY_REJECTS)
    else:
        slice_regions_all = sorted(set(regions) | set(result.stats) | {UNKNOWN_REGION})
        where, params = _ops_slice_where(table, flt, slice_regions_all, "time_value")
        pg.execute(sql.SQL("DELETE FROM ops.migration_rejects WHERE ") + where, params)
        where, params = _ops_slice_where(table, flt, slice_regions_all, "day")
        pg.execute(sql.SQL("DELETE FROM ops.migration_checksums WHERE ") + where, params)
        rejects = sql.Identifier("ops", "migration_rejects")
    if result.rejects:
        raw = raw_rows(sconn, table.source or table.name, [r[0] for r in result.rejects])
        time_key = None
        if table.time_column:
            col = table.column(table.time_column)
            time_key = table.derived.get(col.name) or col.source_column
        with pg.cursor() as cur, cur.copy(sql.SQL(
            "COPY {} (run_id, table_name, region, source_rowid, reason, detail, raw_row, time_value) FROM STDIN"
        ).format(rejects)) as copy:
            for rowid, region, reason, detail in result.rejects:
                row = raw.get(rowid, {})
                tv = row.get(time_key) if time_key else None
                copy.write_row((run_id, table.name, region, rowid, reason, detail,
                                json.dumps(row, default=str), tv if isinstance(tv, str) or tv is None else str(tv)))
    if result.rows and not dry_run:
        with pg.cursor() as cur, cur.copy(
            "COPY ops.migration_checksums (table_name, region, day, row_count, checksum, run_id, row_format) "
            "FROM STDIN"
        ) as copy:
            for (region, day), n in result.rows.items():
                copy.write_row((table.name, region, day, n, result.sums[(region, day)], run_id, ROW_FORMAT))


def _record_run(pg: psycopg.Connection, result: TableLoadResult, flt: SliceFilter) -> None:
    params = json.dumps({"regions": flt.regions, "start_date": str(flt.start_date or ""),
                         "end_date": str(flt.end_date or "")})
    with pg.transaction():
        for region, st in result.regions.items():
            pg.execute(
                "INSERT INTO ops.migration_runs (run_id, table_name, region, status, source_rows, loaded_rows, "
                "rejected_rows, rejects_by_reason, seconds, rows_per_sec, params, finished_at) "
                "VALUES (%s, %s, %s, 'success', %s, %s, %s, %s, %s, %s, %s, now()) "
                "ON CONFLICT (run_id, table_name, region) DO UPDATE SET status = EXCLUDED.status, "
                "source_rows = EXCLUDED.source_rows, loaded_rows = EXCLUDED.loaded_rows, "
                "rejected_rows = EXCLUDED.rejected_rows, rejects_by_reason = EXCLUDED.rejects_by_reason, "
                "seconds = EXCLUDED.seconds, rows_per_sec = EXCLUDED.rows_per_sec, finished_at = now()",
                (result.run_id, result.table, region, st.source_rows, st.loaded, st.rejected_rows,
                 json.dumps(dict(st.rejected)), round(result.seconds, 3), round(result.rows_per_sec), params),
            )


def inspect_unknown_columns(sconn: sqlite3.Connection, table: Table) -> list[str]:
    """Source columns the registry does not know: reported, never silently carried or dropped."""
    from quantdbops.migration.source import expected_source_columns

    have = [r[1] for r in sconn.execute(f'PRAGMA table_info("{table.source}")')]
    want = expected_source_columns(table)
    return [c for c in have if c not in want]

"""Step 4, TimescaleDB mode: compress old chunks, refresh continuous aggregates, report chunks,
compression ratio and the extension's own jobs that failed or never ran.

Compression uses the installed version's API: ``CALL convert_to_columnstore(chunk)`` from 2.18 (the
columnstore rename), ``SELECT compress_chunk(chunk)`` before. A chunk is compressed when its whole range
is older than the table's policy interval (registry ``compression.after``) and it is not compressed yet:
the policy job does the same, this catches what it missed (a job that failed, or never ran).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg

from quantdbops.io.pg import DbMode
from quantdbops.maintenance.locked import LockedTables
from quantdbops.maintenance.params import MaintenanceRequest
from quantdbops.maintenance.record import MaintenanceLog
from quantdbops.maintenance.session import Timeouts, attempt, attempt_call
from quantdbops.registry import AGGREGATES, table
from quantdbops.schema.render import TimescaleApi, parse_version
from quantdbops.sqlfiles import read_sql


def _fetch_one(conn: psycopg.Connection, file: str, params: dict[str, Any]) -> Any:
    return conn.execute(read_sql(file), params).fetchone()


def compress_old_chunks(conn: psycopg.Connection, request: MaintenanceRequest, mode: DbMode, log: MaintenanceLog,
                        timeouts: Timeouts, say: Callable[..., None]) -> dict[str, Any]:
    api = TimescaleApi(parse_version(mode.tsdb_version or "0"))
    statement = read_sql("maintenance/convert_chunk_to_columnstore.sql" if api.columnstore
                         else "maintenance/compress_chunk.sql")
    enabled = {r[0] for r in conn.execute(read_sql("maintenance/select_hypertables.sql")) if r[2]}
    locks = LockedTables(conn, timeouts, log, say)
    counts: dict[str, Any] = {"chunks": 0, "done": 0, "skipped": 0, "failed": 0}
    for name in request.tables:
        t = table(name)
        if not t.compression or name not in enabled:
            continue
        chunks = conn.execute(read_sql("maintenance/select_uncompressed_chunks.sql"),
                              {"hypertable": name, "after": t.compression.after}).fetchall()
        say("%s: %d chunk(s) older than %s not compressed yet", name, len(chunks), t.compression.after)
        for chunk, schema, chunk_name, start, end in chunks:
            counts["chunks"] += 1
            size = partial(_fetch_one, conn, "maintenance/select_chunk_size.sql",
                           {"hypertable": f"public.{name}", "chunk_schema": schema, "chunk_name": chunk_name})
            # Sizing opens the hypertable too: on a locked one it is the chunk's refused attempt.
            sized = locks.attempt(name, chunk, "chunk", "compress_chunk", size)
            if sized is None:  # its table is locked: recorded once, by locks.report()
                continue
            before = {"total_bytes": sized.value[0] if sized.value else None, "range_start": start,
                      "range_end": end, "compressed": False}
            if request.dry_run:
                log.record("compress_chunk", chunk, "dry_run", before=before,
                           message=f"would compress ({name}, older than {t.compression.after})")
                continue
            outcome = locks.attempt(name, chunk, "chunk", "compress_chunk",
                                    partial(conn.execute, statement, {"chunk": chunk}))
            if outcome is None:
                continue
            if outcome.status:
                log.record("compress_chunk", chunk, outcome.status, before=before, duration_s=outcome.seconds,
                           message=outcome.message)
                counts[outcome.status] += 1
                continue
            row = attempt_call(conn, timeouts, size).value
            after = {"total_bytes": row[0] if row else None, "compressed": True}
            log.record("compress_chunk", chunk, "done", before=before, after=after, duration_s=outcome.seconds,
                       message=f"{'convert_to_columnstore' if api.columnstore else 'compress_chunk'} ({name})")
            counts["done"] += 1
    counts["locked"] = locks.report()
    counts["skipped"] += locks.skipped
    return counts


def refresh_aggregates(conn: psycopg.Connection, request: MaintenanceRequest, log: MaintenanceLog,
                       timeouts: Timeouts, say: Callable[..., None]) -> dict[str, int]:
    wanted = [v for v, src in AGGREGATES.items() if src in request.tables]
    found = {r[0] for r in conn.execute(read_sql("maintenance/select_continuous_aggregates.sql"), {"views": wanted})}
    existing = [v for v in wanted if v in found]  # the registry's order: an aggregate after the one it reads
    counts = {"views": len(existing), "done": 0, "skipped": 0, "failed": 0}
    for view in existing:
        if request.dry_run:
            log.record("refresh_aggregate", f"public.{view}", "dry_run",
                       message="would CALL refresh_continuous_aggregate over the whole range")
            continue
        outcome = attempt(conn, timeouts, read_sql("maintenance/refresh_continuous_aggregate.sql"),
                          {"view": f"public.{view}"})
        status = outcome.status or "done"
        log.record("refresh_aggregate", f"public.{view}", status, duration_s=outcome.seconds,
                   message=outcome.message or "continuous aggregate refreshed (invalidated buckets recomputed)")
        counts[status] += 1
        say("refresh_continuous_aggregate %s: %s in %.1fs", view, status, outcome.seconds)
    return counts


def report_chunks(conn: psycopg.Connection, request: MaintenanceRequest, mode: DbMode, log: MaintenanceLog,
                  timeouts: Timeouts) -> list[tuple[Any, ...]]:
    """Chunk counts and compression ratio per hypertable (one row each, for the task's table)."""
    api = TimescaleApi(parse_version(mode.tsdb_version or "0"))
    stats_file = ("maintenance/select_columnstore_stats.sql" if api.columnstore
                  else "maintenance/select_compression_stats.sql")
    rows = []
    for name, chunks, compressed, uncompressed in conn.execute(read_sql("maintenance/select_chunk_counts.sql"),
                                                               {"tables": list(request.tables)}).fetchall():
        log.record("chunk_count", f"public.{name}", "measured",
                   after={"chunks": chunks, "compressed": compressed, "uncompressed": uncompressed})
        ratio = None
        if table(name).compression:
            got = attempt_call(conn, timeouts, partial(_fetch_one, conn, stats_file, {"hypertable": f"public.{name}"}))
            if got.status:
                log.record("compression_ratio", f"public.{name}", got.status, message=got.message)
            else:
                before_b, after_b, n = got.value
                ratio = round(before_b / after_b, 2) if after_b else None
                log.record("compression_ratio", f"public.{name}", "measured",
                           before={"before_bytes": before_b},
                           after={"before_bytes": before_b, "after_bytes": after_b, "ratio": ratio,
                                  "compressed_chunks": n})
        rows.append((name, chunks, compressed, uncompressed, "-" if ratio is None else f"{ratio:.1f}x"))
    return rows


def report_jobs(conn: psycopg.Connection, log: MaintenanceLog) -> list[tuple[Any, ...]]:
    """TimescaleDB's policy jobs that failed last time or never ran."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    rows = []
    for job in cur.execute(read_sql("maintenance/select_problem_jobs.sql")):
        what = "never ran" if job["problem"] == "never_ran" else f"last run failed ({job['total_failures']} failures)"
        hint = "" if job["scheduled"] else " (not scheduled)"
        log.record("timescaledb_job", f"job {job['job_id']} {job['proc_name']}", "measured",
                   after={k: job[k] for k in ("job_id", "proc_name", "hypertable_name", "last_run_status",
                                              "last_run_started_at", "total_runs", "total_failures", "next_start")},
                   message=f"{what}{hint}: check timescaledb.max_background_workers and the server log "
                           "(SELECT * FROM timescaledb_information.job_errors)")
        rows.append((job["job_id"], job["proc_name"], job["hypertable_name"], what + hint))
    return rows

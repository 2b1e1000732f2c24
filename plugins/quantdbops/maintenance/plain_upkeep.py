"""Step 4, plain PostgreSQL mode: create the coming months' partitions ahead, refresh the materialized
views concurrently (readers are never blocked; a view never populated gets a plain REFRESH first)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from quantdbops import PLATFORM_TZ
from quantdbops.maintenance.params import MaintenanceRequest
from quantdbops.maintenance.record import MaintenanceLog
from quantdbops.maintenance.session import Timeouts, attempt, classify
from quantdbops.registry import AGGREGATES, table
from quantdbops.schema.partitions import ensure_partitions, partition_bounds, partition_name
from quantdbops.sqlfiles import read_sql


def add_months(d: date, months: int) -> date:
    idx = d.year * 12 + d.month - 1 + months
    return date(idx // 12, idx % 12 + 1, 1)


def missing_partitions(conn: psycopg.Connection, name: str, first: date, last: date) -> list[str]:
    t = table(name)
    existing = {r[0] for r in conn.execute(read_sql("maintenance/select_partitions.sql"), {"table": f"public.{name}"})}
    return [partition_name(t, start) for start, _ in partition_bounds(t, first, last)
            if partition_name(t, start) not in existing]


def create_partitions_ahead(conn: psycopg.Connection, request: MaintenanceRequest, log: MaintenanceLog,
                            timeouts: Timeouts, say: Callable[..., None], *, today: date | None = None
                            ) -> dict[str, int]:
    today = today or datetime.now(ZoneInfo(PLATFORM_TZ)).date()  # the platform's calendar month
    first, last = date(today.year, today.month, 1), add_months(today, request.months_ahead)
    counts = {"tables": 0, "created": 0, "skipped": 0, "failed": 0}
    for name in request.tables:
        if not table(name).partitioned:
            continue
        row = conn.execute(read_sql("maintenance/select_partitioned_table.sql"), {"table": name}).fetchone()
        if not row or not row[0]:
            continue
        counts["tables"] += 1
        missing = missing_partitions(conn, name, first, last)
        before = {"partitions_missing": missing, "through": last}
        if request.dry_run:
            log.record("create_partitions", f"public.{name}", "dry_run", before=before,
                       message=f"would create {len(missing)} partition(s) through {last:%Y-%m}")
            continue
        started = time.monotonic()
        try:
            with conn.transaction():  # all of a table's new partitions or none
                created = ensure_partitions(conn, table(name), first, last)
        except psycopg.Error as exc:
            if conn.broken or conn.closed:
                raise
            status, message = classify(exc, timeouts)
            log.record("create_partitions", f"public.{name}", status, before=before, message=message)
            counts[status] += 1
            continue
        seconds = time.monotonic() - started
        log.record("create_partitions", f"public.{name}", "done", before=before,
                   after={"partitions": len(created), "created": created}, duration_s=seconds,
                   message=f"{len(created)} partition(s) created; every month through {last:%Y-%m} exists")
        counts["created"] += len(created)
        if created:
            say("%s: created %s", name, ", ".join(created))
    return counts


def refresh_views(conn: psycopg.Connection, request: MaintenanceRequest, log: MaintenanceLog, timeouts: Timeouts,
                  say: Callable[..., None]) -> dict[str, int]:
    counts = {"views": 0, "done": 0, "skipped": 0, "failed": 0}
    for view, source in AGGREGATES.items():
        if source not in request.tables:
            continue
        row = conn.execute(read_sql("maintenance/select_matview_state.sql"), {"view": view}).fetchone()
        if row is None:
            continue
        counts["views"] += 1
        populated = bool(row[0])
        file = "refresh_materialized_view_concurrently.sql" if populated else "refresh_materialized_view.sql"
        if request.dry_run:
            log.record("refresh_aggregate", f"public.{view}", "dry_run",
                       message=f"would {'REFRESH MATERIALIZED VIEW CONCURRENTLY' if populated else 'REFRESH'}")
            continue
        statement = sql.SQL(read_sql(f"maintenance/{file}")).format(view=sql.Identifier("public", view))
        outcome = attempt(conn, timeouts, statement)
        status = outcome.status or "done"
        log.record("refresh_aggregate", f"public.{view}", status, duration_s=outcome.seconds,
                   message=outcome.message or ("refreshed concurrently" if populated else "first populated"))
        counts[status] += 1
        say("refresh %s: %s in %.1fs", view, status, outcome.seconds)
    return counts

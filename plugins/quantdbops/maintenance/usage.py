"""Step 5: the slow-query report (pg_stat_statements) and database and table sizes with growth since the
previous run (the previous sizes are the ``size`` rows earlier runs left in ``ops.maintenance_log``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from quantdbops.io.pg import DbMode, installed_extension
from quantdbops.maintenance import catalog
from quantdbops.maintenance.decisions import growth
from quantdbops.maintenance.params import MaintenanceRequest
from quantdbops.maintenance.record import MaintenanceLog
from quantdbops.maintenance.session import Timeouts, classify
from quantdbops.sqlfiles import read_sql


def slow_queries(conn: psycopg.Connection, request: MaintenanceRequest, log: MaintenanceLog) -> list[dict[str, Any]]:
    """Top N statements by mean time over the threshold, each recorded (query text is normalised)."""
    if not installed_extension(conn, "pg_stat_statements"):
        log.record("slow_query", None, "skipped",
                   message="pg_stat_statements is not installed in this database (shared_preload_libraries + "
                           "CREATE EXTENSION): no slow-query report")
        return []
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    rows = list(cur.execute(read_sql("maintenance/select_slow_queries.sql"),
                            {"min_ms": request.slow_query_min_ms, "top_n": request.slow_query_top_n}))
    for r in rows:
        log.record("slow_query", f"queryid {r['queryid']}", "measured", after=dict(r),
                   message=f"mean {r['mean_ms']:,.1f} ms over {r['calls']:,} calls: EXPLAIN (ANALYZE, BUFFERS) it")
    if not rows:
        log.record("slow_query", None, "measured", after={"count": 0},
                   message=f"no statement averages over {request.slow_query_min_ms:g} ms")
    return rows


def sizes(conn: psycopg.Connection, request: MaintenanceRequest, mode: DbMode, log: MaintenanceLog,
          timeouts: Timeouts, *, now: datetime | None = None) -> list[tuple[Any, ...]]:
    """The database's and each selected table's size, with growth since the last recorded size."""
    now = now or datetime.now().astimezone()
    previous = {r[0]: (r[1], r[2]) for r in conn.execute(read_sql("maintenance/select_previous_sizes.sql"),
                                                          {"run_id": log.run_id})}
    hypertables = catalog.hypertable_oids(conn, mode.timescaledb)
    out = []
    db_name, db_bytes = conn.execute(read_sql("maintenance/select_database_size.sql")).fetchone()
    targets: list[tuple[str, str | None, dict[str, Any]]] = [(f"database {db_name}", None, {})]
    for name, oid in sorted(catalog.table_oids(conn, request.tables).items()):
        file = "select_hypertable_size.sql" if name in hypertables else "select_table_size.sql"
        targets.append((f"public.{name}", f"maintenance/{file}", {"relid": oid}))
    for obj, file, params in targets:
        if file is None:
            total, children = int(db_bytes), None
        else:
            try:
                total, children = conn.execute(read_sql(file), params).fetchone()
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    raise
                status, message = classify(exc, timeouts)
                log.record("size", obj, status, message=message)
                out.append((obj, "-", "-", "-", status))
                continue
        prev_bytes, prev_at = previous.get(obj, (None, None))
        g = growth(int(total), prev_bytes, prev_at, now)
        before = None if prev_bytes is None else {"total_bytes": prev_bytes, "measured_at": prev_at}
        log.record("size", obj, "measured", before=before,
                   after={"total_bytes": int(total), "children": children, **g},
                   message="first measurement" if prev_bytes is None else f"since {prev_at:%Y-%m-%d %H:%M}")
        out.append((obj, int(total), prev_bytes, g["growth_bytes"], "measured"))
    return out

"""Step 1: VACUUM (ANALYZE) of the selected tables' partitions or chunks, largest dead-tuple share first."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg
from psycopg import sql

from quantdbops.io.pg import DbMode
from quantdbops.maintenance import catalog
from quantdbops.maintenance.decisions import TableStats, vacuum_order
from quantdbops.maintenance.locked import LockedTables
from quantdbops.maintenance.params import MaintenanceRequest
from quantdbops.maintenance.record import MaintenanceLog
from quantdbops.maintenance.session import Timeouts
from quantdbops.sqlfiles import read_sql

ACTION = "vacuum"


def table_stats(conn: psycopg.Connection, relids: list[int]) -> dict[int, dict[str, Any]]:
    """{relid: statistics} read fresh (the session's statistics snapshot is dropped first)."""
    if not relids:
        return {}
    conn.execute(read_sql("maintenance/clear_stats_snapshot.sql"))
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return {r["relid"]: r for r in cur.execute(read_sql("maintenance/select_table_stats.sql"), {"relids": relids})}


def _summary(s: dict[str, Any]) -> dict[str, Any]:
    live, dead = int(s["n_live_tup"]), int(s["n_dead_tup"])
    return {"n_live_tup": live, "n_dead_tup": dead,
            "dead_pct": round(dead / (live + dead) * 100, 2) if live + dead else 0.0,
            "n_mod_since_analyze": int(s["n_mod_since_analyze"]),
            "last_vacuum": s["last_vacuum"] or s["last_autovacuum"],
            "last_analyze": s["last_analyze"] or s["last_autoanalyze"]}


def vacuum_tables(conn: psycopg.Connection, request: MaintenanceRequest, mode: DbMode, log: MaintenanceLog,
                  timeouts: Timeouts, say: Callable[..., None]) -> dict[str, Any]:
    """Vacuum every leaf with work to do; record before/after dead tuples of each (a locked table: one record)."""
    leaves = catalog.leaf_relations(conn, request.tables, catalog.hypertable_oids(conn, mode.timescaledb))
    stats = table_stats(conn, [r.relid for r in leaves])
    by_name = {r.qualified: r for r in leaves}
    ordered = vacuum_order(
        TableStats(name=r.qualified, n_live_tup=int(stats[r.relid]["n_live_tup"]),
                   n_dead_tup=int(stats[r.relid]["n_dead_tup"]),
                   n_mod_since_analyze=int(stats[r.relid]["n_mod_since_analyze"]),
                   never_analyzed=not (stats[r.relid]["last_analyze"] or stats[r.relid]["last_autoanalyze"]))
        for r in leaves if r.relid in stats)
    say("VACUUM (ANALYZE): %d of %d relations have work to do (the rest are clean)", len(ordered), len(leaves))
    locks = LockedTables(conn, timeouts, log, say)
    done = failed = 0
    for item in ordered:
        rel = by_name[item.name]
        before = _summary(stats[rel.relid])
        if request.dry_run:
            log.record(ACTION, rel.qualified, "dry_run", before=before,
                       message=f"would VACUUM (ANALYZE): {before['dead_pct']}% dead ({rel.table_name})")
            continue
        statement = sql.SQL(read_sql("maintenance/vacuum_analyze_relation.sql")).format(relation=rel.identifier)
        outcome = locks.attempt(rel.table_name, rel.qualified, rel.kind, ACTION, partial(conn.execute, statement))
        if outcome is None:  # its table is locked: recorded once, by locks.report()
            continue
        if outcome.status:
            log.record(ACTION, rel.qualified, outcome.status, before=before, duration_s=outcome.seconds,
                       message=outcome.message)
            failed += 1
            say("%s %s: %s", outcome.status.upper(), rel.qualified, outcome.message)
            continue
        after = _summary(table_stats(conn, [rel.relid])[rel.relid])
        log.record(ACTION, rel.qualified, "done", before=before, after=after, duration_s=outcome.seconds,
                   message=f"dead tuples {before['n_dead_tup']:,} -> {after['n_dead_tup']:,} ({rel.table_name})")
        done += 1
    locked = locks.report()
    return {"relations": len(leaves), "to_vacuum": len(ordered), "done": done, "skipped": locks.skipped,
            "failed": failed, "locked": locked, "dry_run": request.dry_run}

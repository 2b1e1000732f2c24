"""Steps 2 and 3: measure table and index bloat; rebuild only the indexes above the threshold, with
REINDEX INDEX CONCURRENTLY, leaf by leaf; drop the invalid leftovers of an interrupted concurrent reindex.

On a TimescaleDB hypertable ``REINDEX INDEX CONCURRENTLY`` of the hypertable's own index is refused
("reindexing of a specific index on a hypertable is unsupported"), so only the chunks' indexes are ever
measured and rebuilt, one by one; a plain partitioned table's indexes are likewise rebuilt partition by
partition, so each rebuild is short and locks little. A table whose lock is refused is left alone for the rest
of the step (``locked``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg
from psycopg import sql

from quantdbops.io.pg import DbMode
from quantdbops.maintenance import catalog
from quantdbops.maintenance.bloat import measure_index, measure_table, method_for
from quantdbops.maintenance.decisions import IndexBloat, is_reindex_leftover, reindex_candidates, reindex_decision
from quantdbops.maintenance.locked import LockedTables
from quantdbops.maintenance.params import MaintenanceRequest
from quantdbops.maintenance.record import MaintenanceLog
from quantdbops.maintenance.session import Timeouts, attempt_call
from quantdbops.sqlfiles import read_sql


def measure_bloat(conn: psycopg.Connection, request: MaintenanceRequest, mode: DbMode, log: MaintenanceLog,
                  timeouts: Timeouts, say: Callable[..., None]) -> dict[str, Any]:
    """Measure every non-empty leaf and its valid indexes; returns the rebuild candidates (XCom-safe)."""
    method = method_for(conn)
    leaves = catalog.leaf_relations(conn, request.tables, catalog.hypertable_oids(conn, mode.timescaledb))
    indexes = catalog.indexes_of(conn, [r.relid for r in leaves])
    by_relation: dict[int, list[Any]] = {}
    for ix in indexes:
        by_relation.setdefault(ix.relid, []).append(ix)
    say("Bloat measured with %s on %d relations and %d indexes", method, len(leaves), len(indexes))
    locks = LockedTables(conn, timeouts, log, say)
    empty = failed = 0
    measured: list[IndexBloat] = []
    min_bytes = request.min_index_kb * 1024
    for rel in leaves:
        got = locks.attempt(rel.table_name, rel.qualified, rel.kind, "table_bloat",
                            partial(measure_table, conn, rel.relid, method))
        if got is None:  # its table is locked: recorded once, by locks.report()
            continue
        if got.status:  # its indexes are left alone too: next week will measure them with the table
            log.record("table_bloat", rel.qualified, got.status, message=got.message)
            failed += 1
            continue
        m = got.value
        if m.size_bytes == 0:  # an empty partition, or a chunk whose rows are all in the columnstore
            empty += 1
            continue
        log.record("table_bloat", rel.qualified, "measured", after=m.as_dict(),
                   message=f"{m.bloat_pct}% dead or free ({rel.table_name}); VACUUM reuses it, only a rewrite "
                           "(pg_repack) returns it to the OS")
        for ix in by_relation.get(rel.relid, []):
            if not ix.is_valid:
                continue  # the clean-up step handles invalid indexes
            got = locks.attempt(rel.table_name, ix.qualified, "index", "index_bloat",
                                partial(measure_index, conn, ix.indexrelid, ix.access_method, method))
            if got is None:
                continue
            if got.status:
                log.record("index_bloat", ix.qualified, got.status, message=got.message)
                failed += 1
                continue
            im = got.value
            item = IndexBloat(index=ix.qualified, schema_name=ix.schema_name, index_name=ix.index_name,
                              table_name=rel.table_name, relation=rel.qualified, access_method=ix.access_method,
                              size_bytes=im.size_bytes, bloat_pct=im.bloat_pct, method=im.method)
            _, why = reindex_decision(item, request.bloat_threshold_pct, min_bytes)
            log.record("index_bloat", ix.qualified, "measured", after={**im.as_dict(), "relfilenode": ix.relfilenode},
                       message=f"{why} (on {rel.qualified})")
            measured.append(item)
    locked = locks.report()
    chosen = reindex_candidates(measured, request.bloat_threshold_pct, min_bytes)
    return {"method": method, "relations": len(leaves), "indexes": len(measured), "empty": empty,
            "skipped": failed + locks.skipped, "locked": locked,
            "candidates": [{"index": c.index, "schema_name": c.schema_name, "index_name": c.index_name,
                            "table_name": c.table_name, "relation": c.relation,
                            "bloat_pct": c.bloat_pct, "size_bytes": c.size_bytes} for c in chosen]}


def _index_row(conn: psycopg.Connection, qualified: str) -> tuple[int, str, int, int] | None:
    """(oid, access method, catalog bytes, relfilenode) of an index, or None when it is gone."""
    return conn.execute(read_sql("maintenance/select_index_by_name.sql"), {"index": qualified}).fetchone()


def clean_invalid_indexes(conn: psycopg.Connection, request: MaintenanceRequest, mode: DbMode, log: MaintenanceLog,
                          say: Callable[..., None], locks: LockedTables, *, only_for: str | None = None) -> int:
    """Drop (DROP INDEX CONCURRENTLY) invalid ``*_ccnew`` / ``*_ccold`` leftovers; report other invalid indexes.

    ``only_for``: just the leftovers of that index (after a rebuild of it failed).
    """
    leaves = catalog.leaf_relations(conn, request.tables, catalog.hypertable_oids(conn, mode.timescaledb))
    table_of = {r.relid: r.table_name for r in leaves}
    table_of.update({oid: name for name, oid in catalog.table_oids(conn, request.tables).items()})
    if not table_of:
        return 0
    dropped = 0
    for indexrelid, schema, name, relid, relation, size in conn.execute(
            read_sql("maintenance/select_invalid_indexes.sql"), {"relids": sorted(table_of)}).fetchall():
        qualified = catalog.display_name(schema, name)
        if only_for and not name.startswith(only_for + "_cc"):
            continue
        before = {"size_bytes": size, "indexrelid": indexrelid, "valid": False}
        if not is_reindex_leftover(name):
            log.record("drop_invalid_index", qualified, "skipped", before=before,
                       message=f"invalid index on {relation} not left by a concurrent reindex (a failed CREATE "
                               "INDEX CONCURRENTLY?): drop or rebuild it by hand")
            continue
        if request.dry_run:
            log.record("drop_invalid_index", qualified, "dry_run", before=before,
                       message=f"would DROP INDEX CONCURRENTLY the leftover of an interrupted reindex on {relation}")
            continue
        statement = sql.SQL(read_sql("maintenance/drop_index_concurrently.sql")).format(
            index=sql.Identifier(schema, name))
        outcome = locks.attempt(table_of[relid], qualified, "index", "drop_invalid_index",
                                partial(conn.execute, statement))
        if outcome is None:  # its table is locked: recorded once, by locks.report()
            continue
        if outcome.status:
            log.record("drop_invalid_index", qualified, outcome.status, before=before, duration_s=outcome.seconds,
                       message=outcome.message)
            continue
        log.record("drop_invalid_index", qualified, "done", before=before, after={"size_bytes": 0, "exists": False},
                   duration_s=outcome.seconds, message=f"leftover of an interrupted reindex on {relation} dropped")
        say("Dropped invalid leftover index %s (%s bytes)", qualified, size)
        dropped += 1
    return dropped


def reindex_bloated(conn: psycopg.Connection, request: MaintenanceRequest, mode: DbMode, log: MaintenanceLog,
                    timeouts: Timeouts, say: Callable[..., None], candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """Clean up leftovers, then REINDEX INDEX CONCURRENTLY each candidate; record size/bloat before and after."""
    locks = LockedTables(conn, timeouts, log, say)  # the clean-up's refusals count for the rebuilds too
    dropped = clean_invalid_indexes(conn, request, mode, log, say, locks)
    method = method_for(conn)
    done = gone = failed = 0
    for cand in candidates:
        found = _index_row(conn, cand["index"])
        if found is None:
            log.record("reindex", cand["index"], "skipped", message="index no longer exists")
            gone += 1
            continue
        _, access_method, _, relfilenode = found
        before = {"size_bytes": cand["size_bytes"], "bloat_pct": cand["bloat_pct"], "relfilenode": relfilenode}
        if request.dry_run:
            log.record("reindex", cand["index"], "dry_run", before=before,
                       message=f"would REINDEX INDEX CONCURRENTLY ({cand['bloat_pct']}% bloat, on {cand['relation']})")
            continue
        statement = sql.SQL(read_sql("maintenance/reindex_index_concurrently.sql")).format(
            index=sql.Identifier(cand["schema_name"], cand["index_name"]))
        outcome = locks.attempt(cand["table_name"], cand["index"], "index", "reindex", partial(conn.execute, statement))
        if outcome is None:  # its table is locked: recorded once, by locks.report(); a leftover waits for next week
            continue
        if outcome.status:
            log.record("reindex", cand["index"], outcome.status, before=before, duration_s=outcome.seconds,
                       message=outcome.message)
            failed += 1
            say("%s REINDEX %s: %s", outcome.status.upper(), cand["index"], outcome.message)
            # An interrupted concurrent rebuild leaves an invalid "<index>_ccnew": drop it now.
            dropped += clean_invalid_indexes(conn, request, mode, log, say, locks, only_for=cand["index_name"])
            continue
        # The rebuilt index is a new relation under the old name: look it up again before measuring.
        after_row = _index_row(conn, cand["index"]) or found
        m = attempt_call(conn, timeouts, partial(measure_index, conn, after_row[0], access_method, method))
        after = {"size_bytes": m.value.size_bytes if m.value else after_row[2], "relfilenode": after_row[3],
                 "bloat_pct": m.value.bloat_pct if m.value else None}
        log.record("reindex", cand["index"], "done", before=before, after=after, duration_s=outcome.seconds,
                   message=f"rebuilt concurrently: {before['size_bytes']:,} -> {after['size_bytes']:,} bytes"
                           + (f" (after-measure {m.status}: {m.message})" if m.status else ""))
        done += 1
    locked = locks.report()
    return {"candidates": len(candidates), "done": done, "skipped": gone + locks.skipped, "failed": failed,
            "locked": locked, "leftovers_dropped": dropped, "dry_run": request.dry_run}

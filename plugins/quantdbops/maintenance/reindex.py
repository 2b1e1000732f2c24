"""Steps 2 and 3: measure table and index bloat; rebuild only the indexes above the threshold, with
REINDEX INDEX CONCURRENTLY, leaf by leaf; drop the invalid leftovers of an interrupted concurrent reindex.

On a TimescaleDB hypertable ``REINDEX INDEX CONCURRENTLY`` of the hypertable's own index is refused
("reindexing of a specific index on a hypertable is unsupported"), so only the chunks' indexes are ever
measured and rebuilt, one by one; a plain partitioned table's indexes are likewise rebuilt partition by
partition, so each rebuild is short, locks little and can be skipped alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from quantdbops.io.pg import DbMode
from quantdbops.maintenance import catalog
from quantdbops.maintenance.bloat import measure_index, measure_table, method_for
from quantdbops.maintenance.params import MaintenanceRequest
from quantdbops.maintenance.plan import IndexBloat, is_reindex_leftover, reindex_candidates, reindex_decision
from quantdbops.maintenance.record import MaintenanceLog
from quantdbops.maintenance.session import Timeouts, attempt, classify
from quantdbops.sqlfiles import read_sql


def _measure(conn: psycopg.Connection, timeouts: Timeouts, fn: Callable[[], Any]) -> tuple[Any, str | None, str | None]:
    try:
        return fn(), None, None
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise
        status, message = classify(exc, timeouts)
        return None, status, message


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
    empty = skipped = 0
    measured: list[IndexBloat] = []
    min_bytes = request.min_index_kb * 1024
    for rel in leaves:
        m, status, message = _measure(conn, timeouts, lambda rel=rel: measure_table(conn, rel.relid, method))
        if status:  # its indexes are left alone too: next week will measure them with the table
            log.record("table_bloat", rel.qualified, status, message=message)
            skipped += 1
            continue
        if m.size_bytes == 0:  # an empty partition, or a chunk whose rows are all in the columnstore
            empty += 1
            continue
        log.record("table_bloat", rel.qualified, "measured", after=m.as_dict(),
                   message=f"{m.bloat_pct}% dead or free ({rel.table_name}); VACUUM reuses it, only a rewrite "
                           "(pg_repack) returns it to the OS")
        for ix in by_relation.get(rel.relid, []):
            if not ix.is_valid:
                continue  # the clean-up step handles invalid indexes
            im, status, message = _measure(
                conn, timeouts, lambda ix=ix: measure_index(conn, ix.indexrelid, ix.access_method, method))
            if status:
                log.record("index_bloat", ix.qualified, status, message=message)
                skipped += 1
                continue
            item = IndexBloat(index=ix.qualified, schema_name=ix.schema_name, index_name=ix.index_name,
                              table_name=rel.table_name, relation=rel.qualified, access_method=ix.access_method,
                              size_bytes=im.size_bytes, bloat_pct=im.bloat_pct, method=im.method)
            _, why = reindex_decision(item, request.bloat_threshold_pct, min_bytes)
            log.record("index_bloat", ix.qualified, "measured", after={**im.as_dict(), "relfilenode": ix.relfilenode},
                       message=f"{why} (on {rel.qualified})")
            measured.append(item)
    chosen = reindex_candidates(measured, request.bloat_threshold_pct, min_bytes)
    return {"method": method, "relations": len(leaves), "indexes": len(measured), "empty": empty,
            "skipped": skipped,
            "candidates": [{"index": c.index, "schema_name": c.schema_name, "index_name": c.index_name,
                            "table_name": c.table_name, "relation": c.relation,
                            "bloat_pct": c.bloat_pct, "size_bytes": c.size_bytes} for c in chosen]}


def _index_row(conn: psycopg.Connection, qualified: str) -> tuple[int, str, int, int] | None:
    """(oid, access method, catalog bytes, relfilenode) of an index, or None when it is gone."""
    return conn.execute(read_sql("maintenance/select_index_by_name.sql"), {"index": qualified}).fetchone()


def clean_invalid_indexes(conn: psycopg.Connection, request: MaintenanceRequest, mode: DbMode, log: MaintenanceLog,
                          timeouts: Timeouts, say: Callable[..., None], *, only_for: str | None = None) -> int:
    """Drop (DROP INDEX CONCURRENTLY) invalid ``*_ccnew`` / ``*_ccold`` leftovers; report other invalid indexes.

    ``only_for``: just the leftovers of that index (after a rebuild of it failed).
    """
    leaves = catalog.leaf_relations(conn, request.tables, catalog.hypertable_oids(conn, mode.timescaledb))
    relids = sorted({r.relid for r in leaves} | set(catalog.parent_relids(conn, request.tables)))
    if not relids:
        return 0
    dropped = 0
    for indexrelid, schema, name, relation, size in conn.execute(
            read_sql("maintenance/select_invalid_indexes.sql"), {"relids": relids}).fetchall():
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
        outcome = attempt(conn, timeouts, statement)
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
    dropped = clean_invalid_indexes(conn, request, mode, log, timeouts, say)
    method = method_for(conn)
    done = skipped = failed = 0
    for cand in candidates:
        found = _index_row(conn, cand["index"])
        if found is None:
            log.record("reindex", cand["index"], "skipped", message="index no longer exists")
            skipped += 1
            continue
        _, access_method, _, relfilenode = found
        before = {"size_bytes": cand["size_bytes"], "bloat_pct": cand["bloat_pct"], "relfilenode": relfilenode}
        if request.dry_run:
            log.record("reindex", cand["index"], "dry_run", before=before,
                       message=f"would REINDEX INDEX CONCURRENTLY ({cand['bloat_pct']}% bloat, on {cand['relation']})")
            continue
        statement = sql.SQL(read_sql("maintenance/reindex_index_concurrently.sql")).format(
            index=sql.Identifier(cand["schema_name"], cand["index_name"]))
        outcome = attempt(conn, timeouts, statement)
        if outcome.status:
            log.record("reindex", cand["index"], outcome.status, before=before, duration_s=outcome.seconds,
                       message=outcome.message)
            skipped += outcome.status == "skipped"
            failed += outcome.status == "failed"
            say("%s REINDEX %s: %s", outcome.status.upper(), cand["index"], outcome.message)
            # An interrupted concurrent rebuild leaves an invalid "<index>_ccnew": drop it now.
            dropped += clean_invalid_indexes(conn, request, mode, log, timeouts, say, only_for=cand["index_name"])
            continue
        # The rebuilt index is a new relation under the old name: look it up again before measuring.
        after_row = _index_row(conn, cand["index"]) or found
        m, status, message = _measure(
            conn, timeouts, lambda oid=after_row[0], am=access_method: measure_index(conn, oid, am, method))
        after = {"size_bytes": m.size_bytes if m else after_row[2], "relfilenode": after_row[3],
                 "bloat_pct": None if m is None else m.bloat_pct}
        log.record("reindex", cand["index"], "done", before=before, after=after, duration_s=outcome.seconds,
                   message=f"rebuilt concurrently: {before['size_bytes']:,} -> {after['size_bytes']:,} bytes"
                           + (f" (after-measure {status}: {message})" if status else ""))
        done += 1
    return {"candidates": len(candidates), "done": done, "skipped": skipped, "failed": failed,
            "leftovers_dropped": dropped, "dry_run": request.dry_run}

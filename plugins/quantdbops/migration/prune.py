"""Pruning the merged ``tickers`` table: the way a re-run makes the target's tickers equal the source's.

``tickers`` is merged (upserted), never emptied, because other tables reference it, so a ticker the platform
removed from the source (or one an earlier load of another file wrote) stays in the target and validation
fails on it. With the run's ``prune_tickers`` param, after every load of the run has replaced its slices,
the target tickers of the selected regions that the source's tickers load does not write are deleted where
no other table references them; the referenced ones are kept and listed with the tables that name them
(foreign keys to tickers cascade: deleting a referenced ticker would delete those rows too).
"""

from __future__ import annotations

import sqlite3

import psycopg
from psycopg import sql

from quantdbops.migration.results import PruneResult
from quantdbops.migration.source_queries import would_load_tickers
from quantdbops.registry import ticker_references
from quantdbops.sqlfiles import read_sql


def prune_tickers(sconn: sqlite3.Connection, pg: psycopg.Connection, regions: list[str], *,
                  dry_run: bool) -> PruneResult:
    """Delete (not in a dry run) the target tickers of ``regions`` the source does not write and nothing
    references; ``pg`` autocommit (one transaction here)."""
    out = PruneResult(dry_run=dry_run)
    if pg.execute(read_sql("migration/select_tickers_table.sql")).fetchone()[0] is None:
        return out  # a dry run before the first load: nothing to prune
    written = would_load_tickers(sconn)
    with pg.transaction(force_rollback=dry_run):
        absent = [tuple(r) for r in pg.execute(read_sql("migration/select_absent_tickers.sql"),
                                               (regions, [w[0] for w in written], [w[1] for w in written]))]
        if not absent:
            return out
        tickers, their_regions = [a[0] for a in absent], [a[1] for a in absent]
        for ref in ticker_references():
            if pg.execute(read_sql("migration/select_regclass.sql"), (f"public.{ref.table}",)).fetchone()[0] is None:
                continue
            match = sql.SQL("r.{} = a.ticker").format(sql.Identifier(ref.ticker_column))
            if ref.region_column:
                match = sql.SQL("{} AND r.{} = a.region").format(match, sql.Identifier(ref.region_column))
            referenced = sql.SQL(read_sql("migration/select_referenced_tickers.sql")).format(
                table=sql.Identifier("public", ref.table), match=match)
            for ticker, region in pg.execute(referenced, (tickers, their_regions)):
                out.kept.setdefault((ticker, region), []).append(ref.table)
        out.deleted = [a for a in absent if a not in out.kept]
        if out.deleted and not dry_run:
            pg.execute(read_sql("migration/delete_tickers.sql"),
                       ([d[0] for d in out.deleted], [d[1] for d in out.deleted]))
    return out

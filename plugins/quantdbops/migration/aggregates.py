"""Aggregates after a load: the materialized views (plain mode) or continuous aggregates (TimescaleDB) over
the tables the run changed are refreshed, so dashboards and the nightly backup see the migrated data.

Plain mode: ``REFRESH MATERIALIZED VIEW CONCURRENTLY`` where the view is populated (each has a unique index,
readers are not blocked), a plain ``REFRESH`` for one never populated. TimescaleDB: ``refresh_continuous_
aggregate`` over the whole range, which recomputes only the buckets the load invalidated (a COPY into a
hypertable records them), every bucket for an aggregate never refreshed. The same SQL files as the weekly
maintenance.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import psycopg
from psycopg import sql

from quantdbops.io.pg import DbMode
from quantdbops.migration.results import AggregateRefresh
from quantdbops.registry import AGGREGATES
from quantdbops.sqlfiles import read_sql


def _statement(conn: psycopg.Connection, mode: DbMode, view: str) -> tuple[sql.Composable, dict, str] | None:
    """(statement, params, how) refreshing ``view``; None when the view does not exist."""
    if mode.timescaledb:
        found = conn.execute(read_sql("maintenance/select_continuous_aggregates.sql"), {"views": [view]}).fetchone()
        if found is None:
            return None
        return (sql.SQL(read_sql("maintenance/refresh_continuous_aggregate.sql")), {"view": f"public.{view}"},
                "refresh_continuous_aggregate (buckets the load invalidated)")
    row = conn.execute(read_sql("maintenance/select_matview_state.sql"), {"view": view}).fetchone()
    if row is None:
        return None
    populated = bool(row[0])
    file = "refresh_materialized_view_concurrently.sql" if populated else "refresh_materialized_view.sql"
    how = "REFRESH MATERIALIZED VIEW CONCURRENTLY" if populated else "REFRESH MATERIALIZED VIEW (first population)"
    return sql.SQL(read_sql(f"maintenance/{file}")).format(view=sql.Identifier("public", view)), {}, how


def refresh_after_load(conn: psycopg.Connection, mode: DbMode, tables: Iterable[str],
                       say: Callable[..., None]) -> list[AggregateRefresh]:
    """Refresh every aggregate over one of ``tables`` (``conn`` autocommit: a refresh of a continuous
    aggregate cannot run inside a transaction)."""
    if not conn.autocommit:
        raise ValueError("refresh_after_load needs an autocommit connection")
    changed = set(tables)
    out = []
    for view, source in AGGREGATES.items():
        if source not in changed:
            continue
        found = _statement(conn, mode, view)
        if found is None:
            say("%s: no such aggregate (the schema was not applied?): not refreshed", view)
            continue
        statement, params, how = found
        started = time.monotonic()
        conn.execute(statement, params or None)
        seconds = time.monotonic() - started
        rows = conn.execute(sql.SQL(read_sql("migration/count_aggregate_rows.sql")).format(
            view=sql.Identifier("public", view))).fetchone()[0]
        kind = "continuous aggregate" if mode.timescaledb else "materialized view"
        out.append(AggregateRefresh(view, kind, how, round(seconds, 3), rows))
        say("%s (%s over %s): %s in %.1fs, %s rows", view, kind, source, how, seconds, f"{rows:,}")
    return out

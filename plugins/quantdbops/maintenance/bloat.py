"""Table and index bloat: pgstattuple where the extension is installed, the catalog estimate otherwise.

Each measurement is one statement on one relation, under the session's lock and statement timeouts:
pgstattuple opens the relation with an AccessShareLock, so a table held exclusively by another session
is skipped instead of waited on. The estimate reads only the catalog (``pg_class``, ``pg_stats``) and is
only as fresh as the last ANALYZE, which is why bloat is measured after the vacuum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import psycopg

from quantdbops.io.pg import installed_extension
from quantdbops.maintenance.decisions import btree_bloat_pct, estimated_bloat_pct
from quantdbops.sqlfiles import read_sql

PGSTATTUPLE = "pgstattuple"
ESTIMATE = "estimate"


@dataclass(frozen=True)
class Measurement:
    """A relation's size and wasted share, with the numbers they come from."""

    size_bytes: int
    bloat_pct: float | None
    method: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"size_bytes": self.size_bytes, "bloat_pct": self.bloat_pct, "method": self.method, **self.details}


def method_for(conn: psycopg.Connection) -> str:
    """pgstattuple when the extension is installed in this database, else the catalog estimate."""
    return PGSTATTUPLE if installed_extension(conn, "pgstattuple") else ESTIMATE


def measure_table(conn: psycopg.Connection, relid: int, method: str) -> Measurement:
    if method == PGSTATTUPLE:
        size, dead, free, live = conn.execute(read_sql("maintenance/measure_table_pgstattuple.sql"),
                                              {"relid": relid}).fetchone()
        return Measurement(int(size), round(float(dead) + float(free), 1), PGSTATTUPLE,
                           {"dead_pct": round(float(dead), 1), "free_pct": round(float(free), 1),
                            "live_tuples": int(live)})
    size, live, expected, pages = conn.execute(read_sql("maintenance/estimate_table_bloat.sql"),
                                               {"relid": relid}).fetchone()
    return Measurement(int(size), estimated_bloat_pct(int(pages), int(expected or 0)), ESTIMATE,
                       {"expected_pages": int(expected or 0), "pages": int(pages), "live_tuples": int(live)})


def measure_index(conn: psycopg.Connection, indexrelid: int, access_method: str, method: str) -> Measurement:
    """B-tree bloat; other access methods are sized but not judged (``bloat_pct`` None)."""
    if access_method != "btree":
        size = conn.execute(read_sql("maintenance/select_index_state.sql"), {"indexrelid": indexrelid}).fetchone()[0]
        return Measurement(int(size), None, f"not measured ({access_method})", {})
    if method == PGSTATTUPLE:
        size, leaf, empty, deleted, density, fillfactor = conn.execute(
            read_sql("maintenance/measure_index_pgstatindex.sql"), {"indexrelid": indexrelid}).fetchone()
        pct = btree_bloat_pct(int(leaf), int(empty), int(deleted), density, int(fillfactor))
        return Measurement(int(size), pct, PGSTATTUPLE, {
            "leaf_pages": int(leaf), "empty_pages": int(empty), "deleted_pages": int(deleted),
            "avg_leaf_density": None if density is None or math.isnan(density) else round(float(density), 1),
            "fillfactor": int(fillfactor)})
    size, pages, expected = conn.execute(read_sql("maintenance/estimate_index_bloat.sql"),
                                         {"indexrelid": indexrelid}).fetchone()
    return Measurement(int(size), estimated_bloat_pct(int(pages), int(expected or 0)), ESTIMATE,
                       {"pages": int(pages), "expected_pages": int(expected or 0)})

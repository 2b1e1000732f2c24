"""``ops.maintenance_log``: one row per action or measurement of a run, written as it happens.

Rows are written on the maintenance's own autocommit connection right after each action, so a task
killed halfway still leaves the record of what it did.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from quantdbops.sqlfiles import read_sql

STATUSES = ("done", "skipped", "failed", "dry_run", "measured")


def jsonable(value: Any) -> Any:
    """JSON-safe copy: dates as ISO text, Decimals as numbers, NaN as null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class MaintenanceLog:
    """Writes the rows of one run (``run_id``) and keeps them for the task's own closing table."""

    def __init__(self, conn: psycopg.Connection, run_id: str) -> None:
        self.conn = conn
        self.run_id = run_id
        self.rows: list[dict[str, Any]] = []

    def record(self, action: str, object_name: str | None, status: str, *, before: dict | None = None,
               after: dict | None = None, duration_s: float | None = None, message: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"status {status!r} not in {STATUSES}")
        row = {"run_id": self.run_id, "action": action, "object_name": object_name, "status": status,
               "before": jsonable(before), "after": jsonable(after),
               "duration_s": None if duration_s is None else round(duration_s, 3), "message": message}
        self.conn.execute(read_sql("maintenance/insert_maintenance_log.sql"), {
            **row,
            "before": None if before is None else Jsonb(row["before"]),
            "after": None if after is None else Jsonb(row["after"]),
        })
        self.rows.append(row)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out


def run_rows(conn: psycopg.Connection, run_id: str) -> list[dict[str, Any]]:
    """Every row of a run, in the order written."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return list(cur.execute(read_sql("maintenance/select_run_log.sql"), {"run_id": run_id}))


def ops_schema_ready(conn: psycopg.Connection) -> bool:
    return bool(conn.execute(read_sql("maintenance/select_ops_schema.sql")).fetchone()[0])

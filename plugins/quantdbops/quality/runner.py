"""Run a quality check in PostgreSQL: one set-based statement per table, every requested region at once.

``compose`` fills the check's SQL file for a table; the statement returns the sample rows of each result region
with that region's total (``violation_count``) and, where the check counts by rule or column, ``breakdown``.
A requested region without a row found nothing; a region outside the request shows up only when the run covers
every region and a row carries a region outside the vocabulary.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from quantdbops.quality.checks import check
from quantdbops.quality.compose import ALL_REGIONS, compose
from quantdbops.quality.params import QualityRequest
from quantdbops.quality.report import QualityResult
from quantdbops.registry import Table
from quantdbops.sqlfiles import read_sql

_BOOKKEEPING = ("result_region", "violation_count", "breakdown")
NO_REGION = "(none)"  # the result region of rows whose region is NULL


def _jsonable(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def prepare_session(conn: psycopg.Connection) -> None:
    """The session settings the checks' statements are planned with (include/sql/quality/set_session.sql)."""
    conn.execute(read_sql("quality/set_session.sql"))


def run_table(conn: psycopg.Connection, name: str, t: Table, request: QualityRequest) -> list[QualityResult]:
    """One check on one table: a result per requested region (ALL for market-wide tables)."""
    qc = check(name)
    started = time.monotonic()
    with conn.cursor(row_factory=dict_row) as cur:
        # prepare=False: planned with this run's values every time (a whole-history run then plans no probe
        # before the window, and every chunk outside the window is excluded at plan time)
        rows = cur.execute(compose(qc, t, request), request.sql_params(), prepare=False).fetchall()
    seconds = time.monotonic() - started
    threshold = request.threshold(qc.threshold)
    regions = request.regions if t.has_region else (ALL_REGIONS,)
    found: dict[str, QualityResult] = {
        region: QualityResult(qc.name, region, t.name, qc.severity.value, 0, threshold, seconds=seconds)
        for region in regions}
    for row in rows:
        region = row["result_region"] or NO_REGION
        result = found.setdefault(region, QualityResult(qc.name, region, t.name, qc.severity.value, 0, threshold,
                                                        seconds=seconds))
        result.violation_count = int(row["violation_count"])
        result.breakdown = {k: int(v) for k, v in (row.get("breakdown") or {}).items()}
        if len(result.sample_rows) < request.sample_size:
            result.sample_rows.append({k: _jsonable(v) for k, v in row.items() if k not in _BOOKKEEPING})
    return list(found.values())


def run_check(conn: psycopg.Connection, name: str, request: QualityRequest) -> list[QualityResult]:
    """One check over its tables and the requested regions; one result per table and region."""
    prepare_session(conn)
    return [r for t in check(name).tables for r in run_table(conn, name, t, request)]


def run_all(conn: psycopg.Connection, request: QualityRequest) -> list[QualityResult]:
    """Every requested check (what the DAG's tasks do one by one); for scripts and tests."""
    return [r for name in request.checks for r in run_check(conn, name, request)]

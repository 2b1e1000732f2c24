"""Run the quality checks in PostgreSQL (one set-based query per check, table and region) and record them.

Each SQL file under ``include/sql/quality`` is a ``psycopg.sql`` template: ``{table}`` and the other
identifiers are filled from the table registry, values are bound as ``%(name)s`` parameters. Every query
returns the violating rows (at most ``sample_limit``) and, on each row, the total ``violation_count``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from quantdbops.quality.checks import QualityCheck, Severity, check, ticker_column
from quantdbops.quality.params import QualityRequest
from quantdbops.registry import TABLES, TIMEFRAME_SPELLINGS, Table
from quantdbops.report import format_table
from quantdbops.sqlfiles import read_sql

ALL_REGIONS = "ALL"  # the region of market-wide tables' results


@dataclass
class QualityResult:
    """One check on one table and region."""

    check_name: str
    region: str
    table_name: str
    severity: str
    violation_count: int
    threshold: float | None
    sample_rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.violation_count == 0

    def as_dict(self, samples: bool = False) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        if not samples:
            out.pop("sample_rows")
        return out


def _ident(*names: str) -> sql.Identifier:
    return sql.Identifier(*names)


def _table(t: Table) -> sql.Identifier:
    return _ident("public", t.name)


def _scope(t: Table, alias: str | None = None) -> sql.Composable:
    """The region and window predicates of a table (sargable: bare columns against bound values)."""
    def col(name: str) -> sql.Identifier:
        return _ident(alias, name) if alias else _ident(name)

    parts: list[sql.Composable] = []
    if t.has_region:
        parts.append(sql.SQL("{} = %(region)s").format(col("region")))
    if t.time_column:
        parts.append(sql.SQL("{c} >= %(window_start)s AND {c} < %(window_stop)s").format(c=col(t.time_column)))
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")


def _normalized(t: Table, name: str) -> sql.Composable:
    """A key column as compared for near-duplicates: vocabulary spellings mapped, text trimmed, upper-cased."""
    column = t.column(name)
    ident = _ident(name)
    if column.kind != "text":
        return ident
    spellings = column.value_map or (TIMEFRAME_SPELLINGS if name == "timeframe" else ())
    upper = sql.SQL("upper(btrim({}))").format(ident)
    if not spellings:
        return upper
    whens = sql.SQL(" ").join(sql.SQL("WHEN {} THEN {}").format(sql.Literal(a), sql.Literal(b)) for a, b in spellings)
    return sql.SQL("CASE btrim({}) {} ELSE {} END").format(ident, whens, upper)


def _json_object(names: tuple[str, ...] | list[str]) -> sql.Composable:
    return sql.SQL("jsonb_build_object({})").format(
        sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(n), _ident(n)) for n in names))


def compose(qc: QualityCheck, t: Table, ticker_col: str | None = None, by_ticker_only: bool = False) -> sql.Composed:
    """The check's SQL file for one table, identifiers filled from the registry."""
    template = sql.SQL(read_sql(f"quality/{qc.sql_file}"))
    if qc.name == "duplicates":
        key = t.key
        text_key = [c for c in key if t.column(c).kind == "text"] or list(key)
        return template.format(
            table=_table(t), scope=_scope(t),
            normalized_key=sql.SQL(", ").join(sql.SQL("{} AS {}").format(_normalized(t, c), _ident(c)) for c in key),
            spelling=_json_object(text_key),
            key_names=sql.SQL(", ").join(_ident(c) for c in key))
    if qc.name == "null_required":
        req = t.required_columns
        return template.format(
            table=_table(t), scope=_scope(t),
            key_columns=sql.SQL(", ").join(_ident(c) for c in t.key),
            key_order=sql.SQL(", ").join(_ident(c) for c in t.key),
            any_null=sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(_ident(c)) for c in req),
            null_columns=sql.SQL("array_remove(ARRAY[{}]::text[], NULL)").format(sql.SQL(", ").join(
                sql.SQL("CASE WHEN {} IS NULL THEN {} END").format(_ident(c), sql.Literal(c)) for c in req)))
    if qc.name == "referential":
        assert ticker_col
        own = sql.SQL("k.ticker = {}").format(_ident("x", ticker_col))
        match = own if by_ticker_only else sql.SQL("{} AND k.region = x.region").format(own)
        return template.format(table=_table(t), scope=_scope(t, "x"), tickers=_ident("public", "tickers"),
                               column_name=sql.Literal(ticker_col), ticker_column=_ident(ticker_col), match=match)
    return template.format(table=_table(t))


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


def _query(conn: psycopg.Connection, query: sql.Composed, params: dict[str, Any]) -> tuple[int, list[dict]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    count = int(rows[0]["violation_count"]) if rows else 0
    return count, [{k: _jsonable(v) for k, v in r.items() if k != "violation_count"} for r in rows]


def _regions(t: Table, request: QualityRequest) -> tuple[str, ...]:
    return request.regions if t.has_region else (ALL_REGIONS,)


def run_check(conn: psycopg.Connection, name: str, request: QualityRequest) -> list[QualityResult]:
    """One check over its tables and the requested regions; one result per table and region."""
    qc = check(name)
    threshold = request.threshold(qc.threshold)
    results = []
    for t in qc.tables:
        for region in _regions(t, request):
            params = request.sql_params(region)
            started = time.monotonic()
            if qc.name == "referential":
                count, samples = 0, []
                refs = [(ticker_column(t), False), *((c, True) for c in t.ticker_refs)]
                for col, by_ticker in refs:
                    n, rows = _query(conn, compose(qc, t, col, by_ticker), params)
                    count, samples = count + n, samples + rows
            else:
                count, samples = _query(conn, compose(qc, t), params)
            results.append(QualityResult(qc.name, region, t.name, qc.severity.value, count, threshold,
                                         samples[:request.sample_size], time.monotonic() - started))
    return results


def record(conn: psycopg.Connection, run_id: str, name: str, results: list[QualityResult]) -> None:
    """Replace this run's results of one check (one transaction: a retried task never duplicates them)."""
    with conn.transaction():
        conn.execute(read_sql("quality/delete_quality_results.sql"), {"run_id": run_id, "check_name": name})
        with conn.cursor() as cur:
            cur.executemany(read_sql("quality/insert_quality_result.sql"), [
                {"run_id": run_id, "check_name": r.check_name, "region": r.region, "table_name": r.table_name,
                 "severity": r.severity, "violation_count": r.violation_count, "threshold": r.threshold,
                 "passed": r.passed, "sample_rows": Jsonb(r.sample_rows) if r.sample_rows else None}
                for r in results])


def load_results(conn: psycopg.Connection, run_id: str) -> list[QualityResult]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(read_sql("quality/select_quality_results.sql"), {"run_id": run_id}).fetchall()
    return [QualityResult(r["check_name"], r["region"], r["table_name"], r["severity"], int(r["violation_count"]),
                          None if r["threshold"] is None else float(r["threshold"]), r["sample_rows"] or [])
            for r in rows]


def summary_table(results: list[QualityResult]) -> str:
    """One line per check and region: tables with violations named, clean tables counted."""
    groups: dict[tuple[str, str], list[QualityResult]] = {}
    for r in results:
        groups.setdefault((r.check_name, r.region), []).append(r)
    rows = []
    for (name, region), rs in sorted(groups.items()):
        bad = [r for r in rs if not r.passed]
        status = "PASS" if not bad else ("FAIL" if rs[0].severity == Severity.ERROR else "WARN")
        rows.append((name, region, rs[0].severity, status, sum(r.violation_count for r in rs),
                     "" if rs[0].threshold is None else f"{rs[0].threshold:g}",
                     ", ".join(f"{r.table_name} {r.violation_count:,}" for r in bad) or f"{len(rs)} table(s) clean"))
    return format_table(["check", "region", "severity", "status", "violations", "threshold", "where"], rows)


def failing_samples(results: list[QualityResult]) -> list[str]:
    """A block per failing result: its sample rows as JSON lines (keys and values, no credentials)."""
    out = []
    for r in results:
        if r.passed:
            continue
        lines = "\n".join("  " + json.dumps(row, default=str, sort_keys=True) for row in r.sample_rows)
        out.append(f"{r.severity.upper()} {r.check_name} {r.table_name} {r.region}: {r.violation_count:,} "
                   f"violation(s), {len(r.sample_rows)} sample row(s):\n{lines}")
    return out


def errors(results: list[QualityResult]) -> list[QualityResult]:
    return [r for r in results if not r.passed and r.severity == Severity.ERROR]


def run_all(conn: psycopg.Connection, request: QualityRequest) -> list[QualityResult]:
    """Every requested check (what the DAG's tasks do one by one); for scripts and tests."""
    return [r for name in request.checks for r in run_check(conn, name, request)]


__all__ = ["ALL_REGIONS", "TABLES", "QualityResult", "compose", "errors", "failing_samples", "load_results",
           "record", "run_all", "run_check", "summary_table"]

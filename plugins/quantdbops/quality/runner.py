"""Run the quality checks in PostgreSQL (one set-based query per check, table and region) and record them.

Each SQL file under ``include/sql/quality`` is a ``psycopg.sql`` template: ``{table}`` and the other
identifiers are filled from the table registry, values are bound as ``%(name)s`` parameters. Every query
returns the violating rows (at most ``sample_limit``) and, on each row, the total ``violation_count``.

The column and table checks (``PROVIDER_CHECKS``: NULLs in required columns, the OHLCV business rules,
freshness) are decided by the common-sql provider's ``SQLColumnCheckOperator`` / ``SQLTableCheckOperator``
(see ``quantdbops.operators.quality``), one per table and region, with the region and window as their
``partition_clause``. Only where one of their checks fails does the check's SQL file run, for the exact
violation count and the sample rows the provider does not give.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
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
    # the common-sql provider's per-check outcomes, {"volume.null_check": {"result": 0, "success": True}, ...}
    provider_checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def provider_failures(self) -> list[str]:
        return [f"{k}={v['result']}" for k, v in self.provider_checks.items() if not v["success"]]

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


def _scope(t: Table, alias: str | None = None, values: dict[str, Any] | None = None) -> sql.Composable:
    """The region and window predicates of a table (sargable: bare columns against bound values, or against
    literals of ``values`` where no parameters can be bound: the provider operators' ``partition_clause``)."""
    def col(name: str) -> sql.Identifier:
        return _ident(alias, name) if alias else _ident(name)

    def val(name: str) -> sql.Composable:
        return sql.Placeholder(name) if values is None else sql.Literal(values[name])

    parts: list[sql.Composable] = []
    if t.has_region:
        parts.append(sql.SQL("{} = {}").format(col("region"), val("region")))
    if t.time_column:
        parts.append(sql.SQL("{c} >= {a} AND {c} < {b}").format(c=col(t.time_column), a=val("window_start"),
                                                                 b=val("window_stop")))
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


# --- the checks the common-sql provider's operators decide -------------------------------------------------
PROVIDER_CHECKS = ("null_required", "ohlcv_rules", "freshness")
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_OHLCV_PRICES = ("open", "high", "low", "close")
# (name, boolean per row); NULLs are null_required's business, so a NULL comparison passes here
_OHLCV_ROW_RULES = (("high_ge_open_close", "high >= greatest(open, close)"),
                    ("low_le_open_close", "low <= least(open, close)"),
                    ("high_ge_low", "high >= low"))


def _column(t: Table, name: str) -> str:
    """A registry column as the provider writes it: bare (it also builds aliases ``<column>_<check>``)."""
    if not _PLAIN_NAME.fullmatch(t.column(name).name):
        raise ValueError(f"{t.name}.{name}: not a plain lower-case identifier, cannot go into a provider check")
    return name


def provider_operators(qc: QualityCheck, t: Table, request: QualityRequest, region: str,
                       conn: psycopg.Connection) -> list[Any]:
    """The provider check operators deciding one check on one table and region (values rendered as literals:
    the provider binds no parameters; regions are validated, dates typed, identifiers from the registry)."""
    from quantdbops import CONN_POSTGRES
    from quantdbops.operators.quality import QualityColumnCheckOperator, QualityTableCheckOperator

    params = request.sql_params(region)
    common = {"conn_id": CONN_POSTGRES, "table": _table(t).as_string(conn), "retry_on_failure": False}
    task_id = f"{qc.name}__{t.name}__{region}"
    scope = _scope(t, values=params).as_string(conn)
    if qc.name == "null_required":
        return [QualityColumnCheckOperator(
            task_id=task_id, partition_clause=scope,
            column_mapping={_column(t, c): {"null_check": {"equal_to": 0}} for c in t.required_columns}, **common)]
    if qc.name == "ohlcv_rules":
        mapping = {_column(t, c): {"min": {"greater_than": 0}} for c in _OHLCV_PRICES}
        mapping[_column(t, "volume")] = {"min": {"geq_to": 0}}
        return [
            QualityColumnCheckOperator(task_id=f"{task_id}__columns", partition_clause=scope,
                                       column_mapping=mapping, **common),
            QualityTableCheckOperator(task_id=f"{task_id}__rows", partition_clause=scope, checks={
                name: {"check_statement": f"COALESCE({rule}, TRUE)"} for name, rule in _OHLCV_ROW_RULES}, **common),
        ]
    if qc.name == "freshness":
        time_col = _column(t, t.time_column)
        up_to_as_of = sql.SQL("{} = {} AND {} <= {}").format(
            _ident("region"), sql.Literal(region), _ident(time_col), sql.Literal(request.as_of)).as_string(conn)
        oldest_allowed = request.as_of - timedelta(days=request.max_age_days)
        return [QualityColumnCheckOperator(
            task_id=task_id, partition_clause=up_to_as_of, empty_passes=False,
            column_mapping={time_col: {"max": {"geq_to": oldest_allowed}}}, **common)]
    raise KeyError(f"{qc.name} is not decided by provider check operators")


def _provider_outcomes(conn: psycopg.Connection, qc: QualityCheck, t: Table, request: QualityRequest,
                       region: str) -> dict[str, dict[str, Any]]:
    outcomes: dict[str, dict[str, Any]] = {}
    for op in provider_operators(qc, t, request, region, conn):
        outcomes.update(op.evaluate(conn))
    return {k: {"result": _jsonable(v["result"]), "success": bool(v["success"])} for k, v in outcomes.items()}


def run_check(conn: psycopg.Connection, name: str, request: QualityRequest) -> list[QualityResult]:
    """One check over its tables and the requested regions; one result per table and region."""
    qc = check(name)
    threshold = request.threshold(qc.threshold)
    results = []
    for t in qc.tables:
        for region in _regions(t, request):
            params = request.sql_params(region)
            started = time.monotonic()
            provider: dict[str, dict[str, Any]] = {}
            if qc.name in PROVIDER_CHECKS:
                provider = _provider_outcomes(conn, qc, t, request, region)
                if all(v["success"] for v in provider.values()):
                    count, samples = 0, []
                else:  # the exact count and the sample rows of what the provider's checks found
                    count, samples = _query(conn, compose(qc, t), params)
                    count = max(count, 1)
            elif qc.name == "referential":
                count, samples = 0, []
                refs = [(ticker_column(t), False), *((c, True) for c in t.ticker_refs)]
                for col, by_ticker in refs:
                    n, rows = _query(conn, compose(qc, t, col, by_ticker), params)
                    count, samples = count + n, samples + rows
            else:
                count, samples = _query(conn, compose(qc, t), params)
            results.append(QualityResult(qc.name, region, t.name, qc.severity.value, count, threshold,
                                         samples[:request.sample_size], time.monotonic() - started, provider))
    return results


def record(conn: psycopg.Connection, run_id: str, name: str, results: list[QualityResult]) -> None:
    """Replace this run's results of one check (one transaction: a retried task never duplicates them)."""
    with conn.transaction():
        conn.execute(read_sql("quality/delete_quality_results.sql"), {"run_id": run_id, "check_name": name})
        with conn.cursor() as cur:
            cur.executemany(read_sql("quality/insert_quality_result.sql"), [
                {"run_id": run_id, "check_name": r.check_name, "region": r.region, "table_name": r.table_name,
                 "severity": r.severity, "violation_count": r.violation_count, "threshold": r.threshold,
                 "passed": r.passed, "sample_rows": Jsonb(r.sample_rows) if r.sample_rows else None,
                 "details": Jsonb(_jsonable({"seconds": round(r.seconds, 3), "provider_checks": r.provider_checks}))}
                for r in results])


def load_results(conn: psycopg.Connection, run_id: str) -> list[QualityResult]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(read_sql("quality/select_quality_results.sql"), {"run_id": run_id}).fetchall()
    return [QualityResult(r["check_name"], r["region"], r["table_name"], r["severity"], int(r["violation_count"]),
                          None if r["threshold"] is None else float(r["threshold"]), r["sample_rows"] or [],
                          (r["details"] or {}).get("seconds", 0.0), (r["details"] or {}).get("provider_checks", {}))
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


__all__ = ["ALL_REGIONS", "PROVIDER_CHECKS", "TABLES", "QualityResult", "compose", "errors", "failing_samples",
           "load_results", "provider_operators", "record", "run_all", "run_check", "summary_table"]

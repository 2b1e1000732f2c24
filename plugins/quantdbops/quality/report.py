"""A check's results (one per table and region), their rows in ops.quality_results, and the report's tables."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from quantdbops.quality.checks import Severity
from quantdbops.report import format_table
from quantdbops.sqlfiles import read_sql


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
    seconds: float = 0.0  # the table's query (every region at once)
    breakdown: dict[str, int] = field(default_factory=dict)  # violations per rule or column, where counted so

    @property
    def passed(self) -> bool:
        return self.violation_count == 0

    def as_dict(self, samples: bool = False) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        if not samples:
            out.pop("sample_rows")
        return out


def record(conn: psycopg.Connection, run_id: str, name: str, results: list[QualityResult]) -> None:
    """Replace this run's results of one check (one transaction: a retried task never duplicates them)."""
    with conn.transaction():
        conn.execute(read_sql("quality/delete_quality_results.sql"), {"run_id": run_id, "check_name": name})
        with conn.cursor() as cur:
            cur.executemany(read_sql("quality/insert_quality_result.sql"), [
                {"run_id": run_id, "check_name": r.check_name, "region": r.region, "table_name": r.table_name,
                 "severity": r.severity, "violation_count": r.violation_count, "threshold": r.threshold,
                 "passed": r.passed, "sample_rows": Jsonb(r.sample_rows) if r.sample_rows else None,
                 "details": Jsonb({"seconds": round(r.seconds, 3), "breakdown": r.breakdown})}
                for r in results])


def load_results(conn: psycopg.Connection, run_id: str) -> list[QualityResult]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(read_sql("quality/select_quality_results.sql"), {"run_id": run_id}).fetchall()
    return [QualityResult(r["check_name"], r["region"], r["table_name"], r["severity"], int(r["violation_count"]),
                          None if r["threshold"] is None else float(r["threshold"]), r["sample_rows"] or [],
                          (r["details"] or {}).get("seconds", 0.0), (r["details"] or {}).get("breakdown", {}))
            for r in rows]


def breakdown_cell(result: QualityResult) -> str:
    """``chk_ohlcv_volume 1, chk_ohlcv_prices 1``: what a violation count is made of."""
    return ", ".join(f"{k} {v:,}" for k, v in sorted(result.breakdown.items(), key=lambda kv: (-kv[1], kv[0])))


def check_table(results: list[QualityResult]) -> str:
    """A check task's log table: per table and region, the violations, the query's seconds and the breakdown."""
    return format_table(["table", "region", "violations", "seconds", "by rule or column"],
                        [(r.table_name, r.region, r.violation_count, f"{r.seconds:.3f}", breakdown_cell(r))
                         for r in results])


def verdict(results: list[QualityResult]) -> str:
    """One line: how many results failed at error and warning level, of how many."""
    errs = sum(not r.passed and r.severity == Severity.ERROR for r in results)
    warns = sum(not r.passed and r.severity != Severity.ERROR for r in results)
    if not errs and not warns:
        return f"all {len(results)} results passed"
    return (f"{'FAILED: ' if errs else ''}{errs} error-level and {warns} warning-level results found violations, "
            f"of {len(results)}")


def summary_table(results: list[QualityResult]) -> str:
    """The results that found something, one line per check and region (the passing ones are counted in the
    line after it, and are all in ops.quality_results)."""
    groups: dict[tuple[str, str], list[QualityResult]] = {}
    for r in results:
        if not r.passed:
            groups.setdefault((r.check_name, r.region), []).append(r)
    rows = []
    for (name, region), bad in sorted(groups.items()):
        status = "FAIL" if bad[0].severity == Severity.ERROR else "WARN"
        rows.append((name, region, bad[0].severity, status, sum(r.violation_count for r in bad),
                     "" if bad[0].threshold is None else f"{bad[0].threshold:g}",
                     ", ".join(f"{r.table_name} {r.violation_count:,}" for r in bad)))
    return format_table(["check", "region", "severity", "status", "violations", "threshold", "where"], rows)


def passed_line(results: list[QualityResult], run_id: str) -> str:
    """How many results passed, and the query that lists every result of the run."""
    passed = sum(r.passed for r in results)
    return (f"{passed} other results passed ({len({r.check_name for r in results})} checks). Every result: "
            "SELECT check_name, region, table_name, severity, violation_count, passed FROM ops.quality_results "
            f"WHERE run_id = '{run_id}' ORDER BY check_name, region, table_name;")


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

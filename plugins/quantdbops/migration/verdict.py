"""A failed validation, told for the on-call: what differs (table, region, month, row key, column) and
what to do about it. Plain logic over ``CheckResult`` rows; the validate task raises what this renders.

Keys and column names only, never values: the message goes to the task log and out with the alert, and
row data stays in ``ops.validation_results`` (its ``details`` hold both sides of every differing row).
"""

from __future__ import annotations

from quantdbops.migration.validate import CheckResult
from quantdbops.registry import TABLES, LoadMode

MAX_CHECKS = 10  # failed checks spelled out in the message (all are in ops.validation_results)
MAX_ROWS = 3  # differing rows spelled out per check
DATA_CHECKS = ("row_counts", "date_coverage", "sample_rows", "content_checksum")
FORMAT_CHECKS = ("checksum_format",)
RULE_CHECKS = ("business_rules", "required_nulls", "referential")
SCHEMA_CHECKS = ("features", "indexes")


def _key(key: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items())


def _columns(columns: dict) -> str:
    return f"{', '.join(columns)} differ{'s' if len(columns) == 1 else ''}"


def _row(table: str, row: dict) -> str:
    """One differing row of the content drill-down."""
    what = _columns(row["columns"]) if row.get("columns") else row.get("problem", "differs")
    parts = [table, *(str(row[k]) for k in ("region", "day") if row.get(k)), f"row {_key(row.get('key', {}))}"]
    return f"{' '.join(parts)}: {what}"


def _sample(table: str, diff: dict) -> str:
    """One differing row of the sample check (source rows by rowid)."""
    if "column" in diff:
        return f"{table} source rowid {diff['rowid']}: {diff['column']} differs"
    key = f" ({_key(diff['key'])})" if diff.get("key") else ""
    return f"{table} source rowid {diff['rowid']}{key}: {diff.get('problem', 'differs')}"


def rows_of(r: CheckResult) -> list[str]:
    """The differing rows a check found, one line each (most checks count, they do not list rows)."""
    if r.check == "content_checksum":
        return [_row(r.table or "", row) for row in r.details.get("rows", [])]
    if r.check == "sample_rows":
        return [_sample(r.table or "", d) for d in r.details.get("differences", [])]
    return []


def headline(r: CheckResult) -> str:
    where = " ".join(x for x in (r.check, r.table, r.region) if x)
    return f"{where}: expected {r.expected}, got {r.actual}"


def describe(failed: list[CheckResult], total: int) -> str:
    """The exception message: a first line that names the first difference, then every failed check."""
    first_rows = next((rows_of(r) for r in failed if rows_of(r)), [])
    first = first_rows[0] if first_rows else headline(failed[0])
    lines = [f"Validation failed ({len(failed)} of {total} checks); first difference: {first}"]
    for r in failed[:MAX_CHECKS]:
        lines.append(f"- {headline(r)}")
        rows = rows_of(r)
        lines += [f"    {line}" for line in rows[:MAX_ROWS]]
        if len(rows) > MAX_ROWS:
            lines.append(f"    ... {len(rows) - MAX_ROWS} more differing rows in ops.validation_results")
    if len(failed) > MAX_CHECKS:
        lines.append(f"- ... {len(failed) - MAX_CHECKS} more failed checks in ops.validation_results")
    return "\n".join(lines)


def _tables(failed: list[CheckResult], checks: tuple[str, ...]) -> list[str]:
    return sorted({r.table for r in failed if r.check in checks and r.table})


def what_to_do(failed: list[CheckResult], run_id: str) -> str:
    """The next steps for the kinds of checks that failed, naming the tasks to clear."""
    steps = []
    data = _tables(failed, DATA_CHECKS)
    if data:
        loads = ", ".join(f"load_{t}" for t in data)
        steps.append(
            f"the target no longer holds what the load wrote for {', '.join(data)}: something changed it after "
            "the load (a trigger, a rule, another job, a manual edit) or a load was interrupted. Find and stop "
            f"it (psql: \\d public.{data[0]} lists triggers and rules), then clear {loads} and validate to "
            "reload (a load replaces its slice atomically)")
    merged = sorted(set(data) & {t.name for t in TABLES if t.load_mode is LoadMode.MERGE})
    if merged:
        steps.append(
            f"{', '.join(merged)} {'is' if len(merged) == 1 else 'are'} merged (upserted) by a load, never emptied, "
            "because other tables reference it: target rows the source lacks can come from an earlier load of "
            "another source file or from rows the platform removed since. To make the target equal the source, "
            "trigger the migration of tickers (and the tables that reference the removed ones) with "
            "prune_tickers: true: it deletes the tickers the source lacks where nothing references them and "
            "lists those it keeps")
    formats = _tables(failed, FORMAT_CHECKS)
    if formats:
        steps.append(
            f"the source checksums of {', '.join(formats)} were written by an earlier version of this bundle, "
            "which rendered rows differently, so validate alone cannot compare them: clear "
            f"{', '.join(f'load_{t}' for t in formats)} and validate (a load replaces its slice and its "
            "checksums in one transaction)")
    rules = _tables(failed, RULE_CHECKS)
    if rules:
        steps.append(
            f"rows of {', '.join(rules)} that break a rule reached the target past the loader's checks: fix "
            "them in the source (or add a quarantine rule), then clear "
            f"{', '.join(f'load_{t}' for t in rules)} and validate")
    if any(r.check in SCHEMA_CHECKS for r in failed):
        steps.append("the target schema is incomplete: clear prepare (it re-applies the schema, idempotent) "
                     "and validate; read prepare's log if it fails again")
    steps.append(f"every failed check, with both values of each differing row, is in ops.validation_results "
                 f"(run_id '{run_id}', status 'fail')")
    return "; ".join(steps) + "."


__all__ = ["describe", "headline", "rows_of", "what_to_do"]

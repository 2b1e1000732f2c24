"""A failed validation, told for the on-call: the cause the evidence supports first, then what differs
(table, region, month, row key, column) and what to do about it. Plain logic over ``CheckResult`` rows and
the evidence the validator put in their details; the validate task raises what this renders.

Each cause is picked by what the checks measured, never offered where the figures rule it out:
- equal content checksums and a reject count that does not add up: the rejects table holds rows no current
  load wrote (their runs are named), not the data;
- rows of a merged table the source lacks: left by an earlier load (the run and file that wrote them are
  named); a re-load cannot remove them, ``prune_tickers`` or a statement can;
- content that differs from what the load sent: something changed the table after the load;
- checksums of an earlier version's format, rule breaks, an incomplete schema.

Keys and column names only, never values: the message goes to the task log and out with the alert, and
row data stays in ``ops.validation_results`` (its ``details`` hold both sides of every differing row).
"""

from __future__ import annotations

from dataclasses import dataclass

from quantdbops.migration.validate import CheckResult
from quantdbops.registry import TABLES, LoadMode

MAX_CHECKS = 10  # failed checks spelled out in the message (all are in ops.validation_results)
MAX_ROWS = 3  # differing rows spelled out per check
DATA_CHECKS = ("row_counts", "date_coverage", "sample_rows", "content_checksum")
FORMAT_CHECKS = ("checksum_format",)
RULE_CHECKS = ("business_rules", "required_nulls", "referential")
SCHEMA_CHECKS = ("features", "indexes")
MERGED = {t.name for t in TABLES if t.load_mode is LoadMode.MERGE}


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


@dataclass(frozen=True)
class Finding:
    """One cause the evidence supports, and the next step for it."""

    cause: str
    what_to_do: str
    tables: tuple[str, ...] = ()


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _stray_rejects(failed: list[CheckResult], equal: set[str]) -> list[Finding]:
    """Row counts off while every row of the table's content is equal: the rejects table holds rows that no
    load of the slice wrote (a run other than the one whose checksums the slice holds)."""
    out = []
    for r in failed:
        d = r.details
        if r.check != "row_counts" or r.table not in equal or d.get("target") is None:
            continue
        extra = d["target"] + d["rejected"] - d["source"]
        loaded_by = set(d.get("loaded_by_runs") or [])
        stray = [x for x in d.get("rejects_by_run") or [] if x["run_id"] not in loaded_by] if loaded_by else []
        if extra <= 0 or not stray:
            continue
        runs = ", ".join(f"run {x['run_id']} ({x['rows']:,} rows, {x['first']} .. {x['last']} UTC)" for x in stray)
        cause = (f"{r.table} {r.region}: every row of the table's content equals the source (checksums), but "
                 f"ops.migration_rejects holds {extra:,} more rows than the source has left over for this slice: "
                 f"rejects of {runs}, not of the run that loaded the slice "
                 f"({', '.join(sorted(loaded_by))})")
        delete = "; ".join(f"DELETE FROM ops.migration_rejects WHERE table_name = {_sql_text(r.table or '')} AND "
                           f"region = {_sql_text(r.region or '')} AND run_id = {_sql_text(x['run_id'])}"
                           for x in stray)
        out.append(Finding(cause, (
            f"the data is complete; remove the stale rejects: clear load_{r.table} (a load replaces its slice's "
            f"rejects, whatever region spelling they were filed under) and validate, or delete them yourself: "
            f"{delete}"), (r.table or "",)))
    return out


def _leftovers(failed: list[CheckResult]) -> list[Finding]:
    """Rows of a merged table (tickers: upserted, never emptied) that the source lacks."""
    out = []
    for r in failed:
        left = r.details.get("leftovers") if r.check == "content_checksum" else None
        if not left:
            continue
        current = r.details.get("current_source") or {}
        by_file: dict[tuple, list[dict]] = {}
        for x in left:
            by_file.setdefault((x.get("run_id"), x.get("source"), x.get("sha256"), x.get("written_at")), []).append(x)
        parts = []
        for (run_id, source, sha, written_at), rows in by_file.items():
            keys = "; ".join(_key(x["key"]) for x in rows)
            if run_id is None:
                parts.append(f"{keys} (no run recorded writing it: written before this version or by hand)")
            elif sha and sha == current.get("sha256"):
                parts.append(f"{keys}, written by run {run_id} at {written_at} UTC from this same file: the "
                             "source no longer has it (removed or quarantined since)")
            else:
                parts.append(f"{keys}, left by run {run_id} at {written_at} UTC, which read another file: "
                             f"{source} (sha256 {str(sha)[:16]}…)")
        table = r.table or ""
        refs = [t.name for t in TABLES if any(fk.ref_table == table for fk in t.foreign_keys)]
        deletes = "; ".join(f"DELETE FROM public.{table} WHERE "
                            + " AND ".join(f"{k} = {_sql_text(str(v))}" for k, v in x["key"].items())
                            for x in left[:5])
        cause = (f"{table} holds {len(left)} row(s) the source does not have, and a load never removes a row of "
                 f"{table} (it is merged, since other tables reference it): {' | '.join(parts)}")
        out.append(Finding(cause, (
            f"trigger the migration of {table} with prune_tickers: true (it deletes {table} rows the source lacks "
            f"where no other table references them, and lists those it keeps), or delete them yourself if they are "
            f"really gone: {deletes}" + (f" (the rows of {', '.join(refs)} naming them are deleted with them: "
                                         "foreign keys cascade)" if refs else "")), (table,)))
    return out


def findings(failed: list[CheckResult], results: list[CheckResult], run_id: str) -> list[Finding]:
    """Every cause the failed checks' evidence supports, strongest first."""
    equal = {r.table for r in results if r.check == "content_checksum" and r.status == "pass" and r.table}
    out: list[Finding] = []
    formats = sorted({r.table for r in failed if r.check in FORMAT_CHECKS and r.table})
    if formats:
        out.append(Finding(
            f"the source checksums of {', '.join(formats)} were written by an earlier version of this bundle, which "
            "rendered rows differently, so validate alone cannot compare them",
            f"clear {', '.join(f'load_{t}' for t in formats)} and validate (a load replaces its slice and its "
            "checksums in one transaction)", tuple(formats)))
    out += _stray_rejects(failed, equal)
    out += _leftovers(failed)
    explained = {t for f in out for t in f.tables}

    def differs(r: CheckResult) -> bool:  # a row sent by the load is not what the target holds
        rows = r.details.get("rows", [])
        return any(not row.get("problem", "").startswith("in target, not in source") for row in rows)

    open_tables = {r.table for r in failed if r.table and r.table not in explained}
    changed = sorted({r.table for r in failed if r.check in DATA_CHECKS and r.table in open_tables - equal - MERGED}
                     | {r.table for r in failed if r.check == "content_checksum" and r.table in open_tables
                        and differs(r)})
    merged = sorted({r.table for r in failed if r.check in DATA_CHECKS and r.table in MERGED & open_tables}
                    - set(changed))
    if merged:
        out.append(Finding(
            f"{', '.join(merged)} holds rows the source does not have: it is merged (upserted) by a load, never "
            "emptied, because other tables reference it",
            f"{', '.join(merged)} {'is' if len(merged) == 1 else 'are'} merged (upserted) by a load, never emptied: "
            "target rows the source lacks come from an earlier load of another source file or from rows the "
            "platform removed since. Trigger the migration of tickers with prune_tickers: true (it deletes the rows "
            "the source lacks where nothing references them and lists those it keeps)", tuple(merged)))
    if changed:
        loads = ", ".join(f"load_{t}" for t in changed)
        out.append(Finding(
            f"{', '.join(changed)}: the target no longer holds what the load wrote (the rows below differ from the "
            "rows the load sent)",
            f"something changed it after the load (a trigger, a rule, another job, a manual edit) or a load was "
            f"interrupted. Find and stop it (psql: \\d public.{changed[0]} lists triggers and rules), then clear "
            f"{loads} and validate to reload (a load replaces its slice atomically)", tuple(changed)))
    rules = sorted({r.table for r in failed if r.check in RULE_CHECKS and r.table})
    if rules:
        out.append(Finding(
            f"rows of {', '.join(rules)} break a rule of the declaration in the target (the loader quarantines such "
            "rows and the schema refuses them: these came another way, or before the rule was a constraint)",
            f"find them with the rule's query (ops.validation_results names the rule), fix or delete them, then "
            f"validate; reloading {', '.join(f'load_{t}' for t in rules)} replaces them with what the source holds",
            tuple(rules)))
    if any(r.check in SCHEMA_CHECKS for r in failed):
        out.append(Finding("the target schema is incomplete (a feature or an index is missing or invalid)",
                           "clear prepare (it re-applies the schema, idempotent) and validate; read prepare's log if "
                           "it fails again"))
    unexplained = [r for r in failed if r.table not in {t for f in out for t in f.tables}
                   and r.check not in SCHEMA_CHECKS]
    if unexplained and not out:
        out.append(Finding(headline(unexplained[0]), "read the failed checks below; clear the affected load_<table> "
                           "tasks and validate once the cause is found"))
    return out


def describe(failed: list[CheckResult], total: int, results: list[CheckResult] | None = None,
             run_id: str = "") -> str:
    """The exception message: the first cause the evidence supports, then every failed check."""
    found = findings(failed, results or failed, run_id)
    first_rows = next((rows_of(r) for r in failed if rows_of(r)), [])
    cause = found[0].cause if found else headline(failed[0])
    first = f"{cause}. First difference: {first_rows[0]}" if first_rows else cause
    lines = [f"Validation failed ({len(failed)} of {total} checks): {first}"]
    for r in failed[:MAX_CHECKS]:
        lines.append(f"- {headline(r)}")
        rows = rows_of(r)
        lines += [f"    {line}" for line in rows[:MAX_ROWS]]
        if len(rows) > MAX_ROWS:
            lines.append(f"    ... {len(rows) - MAX_ROWS} more differing rows in ops.validation_results")
    if len(failed) > MAX_CHECKS:
        lines.append(f"- ... {len(failed) - MAX_CHECKS} more failed checks in ops.validation_results")
    return "\n".join(lines)


def what_to_do(failed: list[CheckResult], run_id: str, results: list[CheckResult] | None = None) -> str:
    """The next steps, the first cause's first; then where every detail is."""
    steps = [f.what_to_do for f in findings(failed, results or failed, run_id)]
    steps.append(f"every failed check, with both values of each differing row, is in ops.validation_results "
                 f"(run_id '{run_id}', status 'fail')")
    return "; ".join(steps) + "."


__all__ = ["Finding", "describe", "findings", "headline", "rows_of", "what_to_do"]

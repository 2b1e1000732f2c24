"""`make demo`: run the migration DAG for real on the generated sample, then say what it did.

Make has already started the local PostgreSQL (.local/pg), generated the sample SQLite file and migrated
the Airflow metadata DB (.local/airflow). This runs `airflow dags test migrate_sqlite_to_postgres` with
{"dry_run": false}, exactly as an operator's trigger would run it, then reads the result from the target:
what each table loaded, the quarantine by table and declared rule, and why the declared rules without a
quarantined row have none.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from quantdbops import HEAVY_DB_POOL  # noqa: E402
from quantdbops.registry import declared_rules, migratable_tables  # noqa: E402
from quantdbops.report import format_table  # noqa: E402
from sample.unplantable import CAUSES, NOT_NULL, UNIQUE, all_unplantable  # noqa: E402

# A rejected row's rule as the registry declares it: its detail without the note an invalid_text detail carries
# ('name: a NUL byte'), a duplicate key's detail ('key already loaded from source rowid N') as 'key'.
_RULE_OF_REJECT = "CASE WHEN reason = 'duplicate_key' THEN 'key' ELSE split_part(detail, ': ', 1) END"


def airflow(*args: str, log: Path | None = None) -> int:
    exe = Path(sys.executable).with_name("airflow")
    if log is None:
        return subprocess.run([str(exe), *args], check=False).returncode
    with log.open("w") as fh:
        return subprocess.run([str(exe), *args], stdout=fh, stderr=subprocess.STDOUT, check=False).returncode


def report(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn) as pg:
        run_id = pg.execute("SELECT run_id FROM ops.migration_runs ORDER BY finished_at DESC LIMIT 1").fetchone()[0]
        rows = pg.execute(
            "SELECT table_name, sum(source_rows), sum(loaded_rows), sum(rejected_rows), max(seconds) "
            "FROM ops.migration_runs WHERE run_id = %s GROUP BY 1 ORDER BY 1", (run_id,)).fetchall()
        checks = pg.execute(
            "SELECT status, count(*) FROM ops.validation_results WHERE run_id = %s GROUP BY 1", (run_id,)).fetchall()
        mode = pg.execute("SELECT mode FROM ops.schema_version ORDER BY id DESC LIMIT 1").fetchone()[0]
        rejects = pg.execute(f"SELECT table_name, reason || ':' || {_RULE_OF_REJECT}, count(*) "
                             "FROM ops.migration_rejects WHERE run_id = %s GROUP BY 1, 2", (run_id,)).fetchall()
    print(format_table(["table", "source rows", "loaded", "quarantined", "seconds"],
                       [(t, int(s), int(lo), int(r), float(sec)) for t, s, lo, r, sec in rows],
                       title=f"\nMigrated into {dsn} ({mode} mode), run {run_id}:"))
    print(f"\nValidation checks: {', '.join(f'{n} {s}' for s, n in checks)}")
    print("\n".join(quarantine_lines({(t, label): n for t, label, n in rejects})))


def _wrapped(head: str, text: str) -> list[str]:
    return textwrap.wrap(text, 110, initial_indent=head, subsequent_indent=" " * (len(head) - len(head.lstrip()) + 4),
                         break_on_hyphens=False)


def quarantine_lines(counts: dict[tuple[str, str], int]) -> list[str]:
    """The quarantine by table and declared rule ('reason:detail') with counts, then every declared rule without
    a quarantined row of its own, under why it has none."""
    if not counts:
        return ["\nNothing was quarantined: the sample holds no planted defect (generate it with --defects)."]
    out = [f"\nQuarantined rows (ops.migration_rejects): {sum(counts.values()):,} under {len(counts)} rules, "
           "by table and rule (reason: detail, xN for N rows):"]
    order = {(t.name, r.label): i for t in migratable_tables() for i, r in enumerate(declared_rules(t))}
    tables = [t.name for t in migratable_tables()]
    for table in sorted({t for t, _ in counts}, key=lambda t: tables.index(t) if t in tables else len(tables)):
        labels = sorted((label for t, label in counts if t == table), key=lambda x: order.get((table, x), len(order)))
        out.append(f"  {table} ({sum(counts[(table, x)] for x in labels):,} rows)")
        by_reason: dict[str, list[str]] = defaultdict(list)
        for label in labels:
            reason, _, detail = label.partition(":")
            n = counts[(table, label)]
            by_reason[reason].append(detail if n == 1 else f"{detail} x{n:,}")
        for reason, items in by_reason.items():
            out += _wrapped(f"    {reason}: ", ", ".join(items))
    notes = {(u.table, u.label): u for u in all_unplantable()}
    missing: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))  # why -> table -> rules
    reported: dict[tuple[str, str], str] = {}
    for t in migratable_tables():
        for rule in declared_rules(t):
            note = notes.get((t.name, rule.label))
            if (t.name, rule.label) in counts:
                continue
            if note is None:
                missing["not planted in this sample"][t.name].append(rule.label)
                continue
            # NOT NULL: always missing_required, so the columns are named; a unique key: always duplicate_key:key.
            missing[CAUSES[note.cause]][t.name].append(rule.detail if note.cause == NOT_NULL else rule.label)
            if note.reported_as:
                reported[(CAUSES[note.cause], t.name)] = note.reported_as
    total = sum(len(rules) for by_table in missing.values() for rules in by_table.values())
    out.append(f"\nDeclared rules without a quarantined row of their own ({total} of {len(order)}), by why:")
    for why, by_table in missing.items():
        if why == CAUSES[UNIQUE]:
            out += _wrapped(f"  {why}: ", f"duplicate_key:key of {', '.join(by_table)}")
            continue
        out.append(f"  {why}{' (missing_required)' if why == CAUSES[NOT_NULL] else ''}:")
        for table, rules in by_table.items():
            also = f" (reported as {reported[(why, table)]})" if (why, table) in reported else ""
            out += _wrapped(f"    {table}: ", ", ".join(rules) + also)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", default="data/spock_local.db")
    args = ap.parse_args()
    dsn_uri = os.environ["AIRFLOW_CONN_QUANT_POSTGRES"]
    log = Path(os.environ["AIRFLOW_HOME"]) / "demo-migration.log"
    airflow("pools", "set", HEAVY_DB_POOL, "2", "Caps concurrent heavy database tasks", log=log.with_suffix(".pool"))
    print(f"Running migrate_sqlite_to_postgres on {args.sample} (Airflow home {os.environ['AIRFLOW_HOME']}); "
          f"task logs go to {log}")
    started = time.monotonic()
    rc = airflow("dags", "test", "migrate_sqlite_to_postgres", "-c", json.dumps({"dry_run": False}), log=log)
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    states = [line for line in text.splitlines() if "DagRun Finished" in line]
    ok = rc == 0 and states and "state=success" in states[-1]
    if not ok:
        print(f"\nThe migration FAILED after {seconds:.0f}s (exit {rc}). Last lines of {log}:")
        print("\n".join(text.splitlines()[-40:]))
        return 1
    print(f"\nThe DAG run succeeded in {seconds:.0f}s (Airflow start-up included).")
    report(dsn_uri)
    print("\nRe-run `make demo` any time: each table is replaced atomically, the result is identical. "
          "`make airflow` opens the UI on the same database; `make stop` stops PostgreSQL.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: run the migration DAG for real on the generated sample, then say what it did.

Make has already started the local PostgreSQL (.local/pg), generated the sample SQLite file and migrated
the Airflow metadata DB (.local/airflow). This runs `airflow dags test migrate_sqlite_to_postgres` with
{"dry_run": false}, exactly as an operator's trigger would run it, then reads the result from the target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from quantdbops import HEAVY_DB_POOL  # noqa: E402
from quantdbops.report import format_table  # noqa: E402


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
        reasons = pg.execute("SELECT reason, count(*) FROM ops.migration_rejects WHERE run_id = %s GROUP BY 1 "
                             "ORDER BY 2 DESC", (run_id,)).fetchall()
    print(format_table(["table", "source rows", "loaded", "quarantined", "seconds"],
                       [(t, int(s), int(lo), int(r), float(sec)) for t, s, lo, r, sec in rows],
                       title=f"\nMigrated into {dsn} ({mode} mode), run {run_id}:"))
    print(f"\nValidation checks: {', '.join(f'{n} {s}' for s, n in checks)}")
    if reasons:
        print("Quarantined rows (ops.migration_rejects), by reason: "
              + ", ".join(f"{r} {n}" for r, n in reasons))


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

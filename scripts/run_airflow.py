"""`make airflow`: a local Airflow 3 on this bundle (api-server, scheduler, dag-processor, triggerer).

Make has started the local PostgreSQL (.local/pg) and exported the connections (AIRFLOW_CONN_*). This
keeps Airflow's metadata in a database ``airflow`` of that same cluster (LocalExecutor runs tasks side by
side), migrates it, starts the four components from scripts/airflowstack.py (the same code the
end-to-end tests run), creates the heavy-database pool through the REST API, and prints the address and
login. Ctrl-C stops every component.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from airflowstack import AirflowError, AirflowStack, postgres_metadata_uri  # noqa: E402


def ensure_database(port: int, name: str) -> None:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8080, help="API server / UI port (loopback)")
    ap.add_argument("--pg-port", type=int, default=55432, help="port of the local PostgreSQL (make pg)")
    ap.add_argument("--metadata-db", default="airflow", help="database of Airflow's metadata in that cluster")
    args = ap.parse_args()
    home = Path(os.environ["AIRFLOW_HOME"])
    ensure_database(args.pg_port, args.metadata_db)
    stack = AirflowStack(home, postgres_metadata_uri("127.0.0.1", args.pg_port, args.metadata_db), args.port,
                         clean_env=False)
    started = time.monotonic()
    print(f"Migrating the metadata DB {args.metadata_db} on 127.0.0.1:{args.pg_port}; Airflow home {home}")
    try:
        stack.up()
        print(f"\nAirflow is up after {time.monotonic() - started:.0f}s: {stack.url}  login: admin / "
              f"{stack.password}  (kept in {stack.passwords_file})")
        print("Trigger migrate_sqlite_to_postgres from its trigger form (untick dry_run to write). "
              f"Component logs: {home}/<component>.log. Ctrl-C stops Airflow.")
        while not stack.exited():
            time.sleep(2)
        dead = stack.exited()
        print(f"\nAn Airflow component exited ({dead}); stopping the others. Last lines:")
        for name in dead:
            print(f"--- {stack.log(name)}\n{stack.tail(name)}")
        return 1
    except AirflowError as exc:
        print(f"\nAirflow did not start: {exc}")
        return 1
    except KeyboardInterrupt:
        print("\nStopping Airflow...")
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())

"""`make airflow`: a local Airflow 3 (`airflow standalone`) on this bundle, for the trigger form.

Uses the Airflow home under .local/airflow and the connections Make exports (AIRFLOW_CONN_*), creates
the heavy-database pool, waits for the UI and prints its address and login. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from quantdbops import HEAVY_DB_POOL  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()
    home = Path(os.environ["AIRFLOW_HOME"])
    exe = str(Path(sys.executable).with_name("airflow"))
    env = dict(os.environ)
    # standalone starts its components as `airflow ...` subprocesses: the virtualenv must come first
    env["PATH"] = f"{Path(exe).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({
        "AIRFLOW__API__PORT": str(args.port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
    })
    subprocess.run([exe, "pools", "set", HEAVY_DB_POOL, "2", "Caps concurrent heavy database tasks"],
                   env=env, check=True, capture_output=True)
    log = home / "standalone.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([exe, "standalone"], env=env, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{args.port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                print(f"airflow standalone exited ({proc.returncode}); see {log}")
                return 1
            try:
                urllib.request.urlopen(f"{url}/api/v2/version", timeout=2)
                break
            except OSError:
                time.sleep(2)
        pw_file = home / "passwords.json"
        password = json.loads(pw_file.read_text()).get("admin", "?") if pw_file.exists() else "?"
        print(f"Airflow UI: {url}  login: admin / {password}  (kept in {pw_file})")
        print("Trigger migrate_sqlite_to_postgres from its trigger form (untick dry_run to write). "
              f"Logs: {log}. Ctrl-C stops Airflow.")
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

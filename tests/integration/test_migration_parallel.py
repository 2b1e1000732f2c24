"""The multi-process load path gives exactly what the in-process path gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from quantdbops.io.pg import connect, detect_mode
from quantdbops.migration.source import open_source
from quantdbops.migration.source_plan import SliceFilter
from quantdbops.migration.target_load import load_table
from quantdbops.registry import OHLCV_DATA, TICKERS
from support.harness import MODES
from support.migration import DEFECTS_SAMPLE, failures, fingerprints, make_sample, validate

pytestmark = pytest.mark.parametrize("mode", MODES)


def _load(source: Path, dsn: str, *, workers: int) -> dict:
    sconn = open_source(source)
    with connect(dsn) as pg:
        mode = detect_mode(pg)
        pg.commit()
        load_table(sconn, pg, TICKERS, SliceFilter(), run_id="t", mode=mode, workers=1)
        result = load_table(sconn, pg, OHLCV_DATA, SliceFilter(), run_id=f"w{workers}", mode=mode,
                            workers=workers, parallel_min_rows=0)
    return result.as_dict()


def _ops(conn: psycopg.Connection) -> tuple[list, list]:
    sums = conn.execute("SELECT region, day, row_count, checksum FROM ops.migration_checksums "
                        "WHERE table_name = 'ohlcv_data' ORDER BY 1, 2").fetchall()
    rejects = conn.execute("SELECT source_rowid, reason, detail, raw_row FROM ops.migration_rejects "
                           "WHERE table_name = 'ohlcv_data' ORDER BY 1").fetchall()
    return sums, rejects


def test_parallel_producers_match_the_single_process_load(
    mode: str, tmp_path: Path, pg_dsn: str, schema_conn: psycopg.Connection
) -> None:
    source, manifest = make_sample(tmp_path, **DEFECTS_SAMPLE)
    single = _load(source, pg_dsn, workers=1)
    content, ops = fingerprints(schema_conn, ["ohlcv_data"]), _ops(schema_conn)
    parallel = _load(source, pg_dsn, workers=3)
    assert fingerprints(schema_conn, ["ohlcv_data"]) == content
    assert _ops(schema_conn) == ops
    for key in ("source_rows", "loaded", "rejected", "regions"):
        assert parallel[key] == single[key], key
    planted = {p["rowid"] for p in manifest["planted"] if p["table"] == "ohlcv_data" and p["expect"] == "reject"}
    assert {r[0] for r in ops[1]} == planted
    assert failures(validate(source, pg_dsn, ["tickers", "ohlcv_data"])) == []


# A parent whose __main__ is a script that must not run twice (as the `airflow` CLI under a worker, where a
# task process blocks the metadata DB URL and the CLI's import dies in any child that re-runs it).
_PARENT_SCRIPT = '''
import json, sys
if __name__ != "__main__":
    raise SystemExit("the parent's __main__ script was re-run in a producer process")
from quantdbops.io.pg import connect, detect_mode
from quantdbops.migration.target_load import load_table
from quantdbops.migration.source_plan import SliceFilter
from quantdbops.migration.source import open_source
from quantdbops.registry import OHLCV_DATA, TICKERS

source, dsn = sys.argv[1:]
sconn = open_source(source)
with connect(dsn) as pg:
    mode = detect_mode(pg)
    pg.commit()
    load_table(sconn, pg, TICKERS, SliceFilter(), run_id="t", mode=mode, workers=1)
    result = load_table(sconn, pg, OHLCV_DATA, SliceFilter(), run_id="p", mode=mode, workers=2,
                        parallel_min_rows=0)
print(json.dumps({"loaded": result.loaded}))
'''


def test_producers_do_not_re_run_the_parent_script(
    mode: str, tmp_path: Path, pg_dsn: str, schema_conn: psycopg.Connection
) -> None:
    source, _ = make_sample(tmp_path, **DEFECTS_SAMPLE)
    script = tmp_path / "parent.py"
    script.write_text(_PARENT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "plugins")}
    res = subprocess.run([sys.executable, str(script), str(source), pg_dsn], capture_output=True, text=True,
                         env=env, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    loaded = json.loads(res.stdout.splitlines()[-1])["loaded"]
    assert loaded == schema_conn.execute("SELECT count(*) FROM ohlcv_data").fetchone()[0] > 0

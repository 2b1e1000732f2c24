"""`make bench` (backup): the nightly DAG's dump-and-upload against a bare `pg_dump -Fc` of the same database.

    python scripts/bench_backup.py                 # 3 rounds, medians
    python scripts/bench_backup.py --repeat 5 --keep

Set-up (untimed): a throw-away, durable (fsync on) PostgreSQL 15 cluster under .local/bench/pg-backup,
TimescaleDB preloaded where installed (``--plain``: not); moto's S3 server on loopback; the project schema,
and tickers + ohlcv_data + technical_analysis of a >= 1M-bar sample (.local/bench/backup_1m.db, generated
once) loaded with the migration's own loader; aggregates refreshed and old chunks compressed as the
policies would have done by the night of a backup. Background jobs stay off so every round sees the same
database.

Each round times, in the same run against the same database (after ``sync`` and a CHECKPOINT each):

(a) a bare ``pg_dump -Fc`` to a local file: the baseline;
(b) the DAG's dump-and-upload: ``nightly_steps.dump`` (pg_dump -Fc in an exported snapshot, SHA-256 while it
    streams, per-table row counts, manifest, ops.backups) then ``nightly_steps.upload`` (re-hash of the kept
    file, multipart upload through the amazon provider's S3Hook, size and SHA-256 read back, manifest PUT):
    exactly what the ``dump`` and ``upload`` tasks call; the verification restore is excluded;
(c) the verification restore on its own: ``nightly_steps.verify`` (pg_restore into a scratch database,
    TimescaleDB's pre/post restore steps, row counts against the manifest, drop).

(a) and (b) alternate their order from round to round. Medians are printed with the ratio (b)/(a) against
the goal (at most 1.2x), and written to .local/bench/backup-results.json. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "scripts")]
# As `make` exports them; set before anything imports Airflow (the S3 hook reads quant_s3 through it).
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".local" / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DEFAULT_TIMEZONE", "Asia/Seoul")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # the hook's info lines are not our output

from bench import backup_env, cpu  # noqa: E402
from bench import backup_report as report  # noqa: E402
from bench.backup_report import BASELINE, OURS, RESTORE, Leg  # noqa: E402
from pgcluster import Cluster, free_port, timescaledb_available  # noqa: E402
from quantdbops import CONN_S3  # noqa: E402
from quantdbops.backup import nightly_steps, store  # noqa: E402
from quantdbops.backup.dump import client_major, pg_env, tool  # noqa: E402
from quantdbops.backup.naming import TZ  # noqa: E402
from quantdbops.backup.settings import BackupSettings  # noqa: E402
from quantdbops.io.pg import connect  # noqa: E402

DB = "quant_platform"
BENCH_DIR = REPO / ".local" / "bench"
SAMPLE = BENCH_DIR / "backup_1m.db"
WORK = BENCH_DIR / "backup-work"
RESULTS = BENCH_DIR / "backup-results.json"
BUCKET = "quant-db-backups-bench"
MULTIPART = 64 * store.MB  # the operators' default multipart_chunk_mb


def say(text: str = "") -> None:
    print(text, flush=True)


def quiet(*_args: object, **_kwargs: object) -> None:
    """The steps' log lines are not the benchmark's output."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the median of each step is reported")
    ap.add_argument("--plain", action="store_true", help="plain PostgreSQL even where TimescaleDB is installed")
    ap.add_argument("--port", type=int, help="port of the benchmark's own cluster (default: a free one)")
    ap.add_argument("--keep", action="store_true", help="keep the stopped cluster and the work directory")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    return args


def conn_kwargs(cluster: Cluster) -> dict[str, object]:
    return {"host": "127.0.0.1", "port": cluster.port, "user": "postgres", "dbname": DB}


# --- the timed steps --------------------------------------------------------------------------------------
def bare_pg_dump(kw: dict[str, object], out: Path) -> int:
    """(a): ``pg_dump -Fc`` straight to a file, same client, same database; returns the file's size."""
    res = subprocess.run([tool("pg_dump"), "--format=custom", "--no-password", f"--file={out}"], env=pg_env(kw),
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"pg_dump exited with {res.returncode}: {res.stderr[-2000:]}")
    return out.stat().st_size


def dag_dump_upload(kw: dict[str, object], plan: dict[str, Any], s: BackupSettings, run_id: str,
                    leg: Leg) -> dict[str, Any]:
    """(b): the ``dump`` task's function then the ``upload`` task's (each task makes its own hook)."""
    started = time.perf_counter()
    d = nightly_steps.dump(kw, plan, s, run_id=run_id, say=quiet)
    dumped = time.perf_counter()
    u = nightly_steps.upload(kw, store.make_hook(s.aws_conn_id, transfer=s.transfer), d, s, say=quiet)
    done = time.perf_counter()
    leg.add_part("pg_dump -Fc streamed through SHA-256", d["dump_seconds"])
    leg.add_part("rest of dump task (snapshot, row counts, manifest, journal)", dumped - started - d["dump_seconds"])
    leg.add_part("local re-hash, manifest PUT, journal (upload task)",
                 done - dumped - u["upload_seconds"] - u["readback_seconds"])
    leg.add_part("S3 upload (S3Hook.load_file, multipart)", u["upload_seconds"])
    leg.add_part("S3 read-back (HEAD + SHA-256 of the object)", u["readback_seconds"])
    return u


def verify_restore(kw: dict[str, object], u: dict[str, Any], s: BackupSettings, leg: Leg) -> dict[str, Any]:
    """(c): the ``verify`` task's function: pg_restore into a scratch database, checks, drop."""
    started = time.perf_counter()
    v = nightly_steps.verify(kw, store.make_hook(s.aws_conn_id, transfer=s.transfer), u, s, say=quiet)
    total = time.perf_counter() - started
    leg.add_part("pg_restore (TimescaleDB pre/post restore included)", v["verify_seconds"])
    leg.add_part("create + row counts vs manifest + drop + manifest/latest", total - v["verify_seconds"])
    return v


class Runner:
    """Times one step after ``sync`` + CHECKPOINT, noting how busy other processes kept the machine."""

    def __init__(self, kw: dict[str, object], postmaster: int | None) -> None:
        self.kw = kw
        self.postmaster = postmaster
        self.other_cores: list[float] = []

    def settle(self) -> None:
        os.sync()  # the previous step's dirty pages must not be written back during this one
        with connect(self.kw, autocommit=True) as c:
            c.execute("CHECKPOINT")

    def timed(self, leg: Leg, rep: int, repeat: int, fn: Callable[[], int]) -> None:
        self.settle()
        before = cpu.sample(self.postmaster)
        started = time.perf_counter()
        size = fn()
        seconds = time.perf_counter() - started
        others = cpu.other_cores(before, cpu.sample(self.postmaster), seconds)
        leg.seconds.append(seconds)
        leg.dump_bytes.append(size)
        if others is not None:
            leg.other_cores.append(others)
            self.other_cores.append(others)
        say(f"  [{rep}/{repeat}] {leg.label:<44} {seconds:8.2f} s  ({size / 1e6:,.1f} MB dump"
            + (f", others {others:.1f} cores)" if others is not None else ")"))


# --- one run ----------------------------------------------------------------------------------------------
def machine_info() -> dict[str, object]:
    model = ""
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model or platform.processor(), "os": f"{platform.system()} "
            f"{platform.release()}", "python": platform.python_version()}


def set_up(args: argparse.Namespace, cluster: Cluster, moto: backup_env.MotoServer) -> backup_env.DbFacts:
    """Start both servers, load and settle the database (all untimed)."""
    cluster.destroy()  # a leftover of an earlier run may be in the other mode or hold other data
    cluster.start()
    cluster.createdb(DB)
    say(f"PostgreSQL 15 cluster on 127.0.0.1:{cluster.port} ({cluster.data}), fsync on, background jobs off")
    moto.start()
    os.environ["AIRFLOW_CONN_QUANT_S3"] = json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": moto.endpoint, "region_name": "us-east-1"}})
    backup_env.s3_client(moto.endpoint).create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    say(f"moto S3 server (child process) on {moto.endpoint}, bucket {BUCKET}")
    say("Loading the database (untimed)...")
    mode = backup_env.load_database(cluster.dsn(DB), SAMPLE, say)
    backup_env.settle_database(cluster.dsn(DB), mode, say)
    return backup_env.db_facts(cluster.dsn(DB))


def clean_round(s: BackupSettings, endpoint: str) -> None:
    """Drop this round's local files and objects: moto keeps objects in memory, and every round starts alike."""
    shutil.rmtree(s.local_dir / DB, ignore_errors=True)
    backup_env.empty_bucket(backup_env.s3_client(endpoint), s.bucket)


def run_rounds(args: argparse.Namespace, cluster: Cluster, moto: backup_env.MotoServer) -> tuple[
        dict[str, Leg], Runner]:
    kw = conn_kwargs(cluster)
    s = BackupSettings(bucket=BUCKET, local_dir=WORK, verify=True, aws_conn_id=CONN_S3,
                       transfer={"multipart_threshold": MULTIPART, "multipart_chunksize": MULTIPART})
    legs = {BASELINE: Leg(BASELINE, "(a) bare pg_dump -Fc to a local file"),
            OURS: Leg(OURS, "(b) DAG dump + upload + read-back"),
            RESTORE: Leg(RESTORE, "(c) verification restore (scratch DB)")}
    runner = Runner(kw, cpu.postmaster_pid(cluster.data))
    WORK.mkdir(parents=True, exist_ok=True)
    bare = WORK / "bare.dump"
    warm = time.perf_counter()
    bare_pg_dump(kw, bare)  # warm-up, untimed: both legs then read a database already in memory
    bare.unlink()
    say(f"Warm-up pg_dump (untimed): {time.perf_counter() - warm:.2f} s")
    base_when = datetime.now(TZ).replace(microsecond=0)
    say(f"Running {args.repeat} rounds ((a) and (b) alternate their order; then (c))...")
    for rep in range(1, args.repeat + 1):
        hook = store.make_hook(s.aws_conn_id, transfer=s.transfer)
        plan = nightly_steps.preflight(kw, hook, s, base_when + timedelta(minutes=rep))  # untimed: not dump/upload
        uploaded: dict[str, Any] = {}

        def run_bare() -> int:
            size = bare_pg_dump(kw, bare)
            bare.unlink()
            return size

        def run_ours(plan: dict[str, Any] = plan, rep: int = rep, uploaded: dict[str, Any] = uploaded) -> int:
            uploaded.update(dag_dump_upload(kw, plan, s, f"bench-backup-{rep}", legs[OURS]))
            return int(uploaded["size_bytes"])

        steps = [(legs[BASELINE], run_bare), (legs[OURS], run_ours)]
        for leg, fn in steps if rep % 2 else steps[::-1]:
            runner.timed(leg, rep, args.repeat, fn)
        def run_restore(uploaded: dict[str, Any] = uploaded) -> int:
            return int(verify_restore(kw, uploaded, s, legs[RESTORE])["size_bytes"])

        runner.timed(legs[RESTORE], rep, args.repeat, run_restore)
        clean_round(s, moto.endpoint)
    return legs, runner


def print_results(header: dict[str, Any], legs: dict[str, Leg], runner: Runner) -> None:
    facts = header["database"]
    db_bytes = facts["size_bytes"]
    say()
    say("=" * 100)
    say(f"Backup benchmark: {facts['mode']} (PostgreSQL {facts['pg_version']}"
        + (f", TimescaleDB {facts['tsdb_version']})" if facts["tsdb_version"] else ")")
        + f", {header['repeat']} rounds, medians")
    say(f"Database {DB}: {db_bytes / 1e6:,.1f} MB (pg_database_size); rows: "
        + ", ".join(f"{t} {n:,}" for t, n in facts["rows"].items()))
    dump = legs[OURS].size or legs[BASELINE].size
    say(f"Dump (custom format, default compression): {(dump or 0) / 1e6:,.1f} MB "
        f"(bare pg_dump: {(legs[BASELINE].size or 0) / 1e6:,.1f} MB)")
    say(f"Machine: {header['machine']['cores']} cores ({header['machine']['cpu']}), shared with other work; "
        f"pg_dump {header['pg_dump_major']}; fsync={facts['settings']['fsync']}, "
        f"shared_buffers={facts['settings']['shared_buffers']}")
    say()
    say(report.leg_table(legs, db_bytes))
    say()
    say(report.parts_table(legs[OURS]))
    say()
    say(report.parts_table(legs[RESTORE]).replace("part of (b)", "part of (c)"))
    say()
    for line in report.goal_lines(legs):
        say(line)
    say(f"Dump MB/s (pg_dump -Fc, bare): {legs[BASELINE].mb_per_s(legs[BASELINE].size) or 0:.1f} MB/s of dump, "
        f"{legs[BASELINE].mb_per_s(db_bytes) or 0:.1f} MB/s of database")
    say(f"Dump MB/s (DAG, dump + upload + read-back): {legs[OURS].mb_per_s(legs[OURS].size) or 0:.1f} MB/s of dump")
    restore_s = legs[RESTORE].parts.get("pg_restore (TimescaleDB pre/post restore included)")
    if restore_s and legs[RESTORE].size:
        med = statistics.median(restore_s)
        say(f"Restore MB/s (pg_restore alone): {legs[RESTORE].size / 1e6 / med:.1f} MB/s of dump, "
            f"{db_bytes / 1e6 / med:.1f} MB/s of database; whole verify step: "
            f"{legs[RESTORE].mb_per_s(legs[RESTORE].size) or 0:.1f} MB/s of dump")
    say()
    for line in report.busy_lines(runner.other_cores, int(header["machine"]["cores"] or 0)):
        say(line)
    say("NOTE: S3 is moto's in-memory server on loopback (its own process): no network, no real S3 latency or "
        "bandwidth, so the upload and read-back seconds are a lower bound of a real S3's.")
    say("NOTE: the machine has 2 cores shared with other engineers' tests and benchmarks; pg_dump, the "
        "SHA-256, moto and PostgreSQL compete for them.")
    say("NOTE: (b) is the functions the dump and upload tasks call; Airflow's own task overhead (worker start, "
        "XCom) and the untimed preflight are not in it; (c) is excluded from the ratio as the issue asks.")


def benchmark(args: argparse.Namespace) -> int:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    BENCH_DIR.chmod(0o755)  # the postgres OS user (runuser when root) reaches its cluster below it
    cluster = Cluster(BENCH_DIR / "pg-backup", args.port or free_port(), fsync=True,
                      timescaledb=False if args.plain else None, background_jobs=False)
    moto = backup_env.MotoServer(free_port())
    try:
        facts = set_up(args, cluster, moto)
        legs, runner = run_rounds(args, cluster, moto)
        header = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "repeat": args.repeat,
                  "database": {"name": DB, "size_bytes": facts.size_bytes, "mode": facts.mode,
                               "pg_version": facts.pg_version, "tsdb_version": facts.tsdb_version,
                               "rows": facts.rows, "settings": facts.settings},
                  "sample": str(SAMPLE), "machine": machine_info(), "pg_dump_major": client_major(),
                  "s3": "moto in-memory server on loopback (child process): upload figures are a lower bound",
                  "multipart_chunk_bytes": MULTIPART,
                  "other_processes_cores": {"mean": round(statistics.fmean(runner.other_cores), 2),
                                            "max": round(max(runner.other_cores), 2)} if runner.other_cores else None}
        print_results(header, legs, runner)
        report.write_json(RESULTS, report.as_json(header, legs, facts.size_bytes))
        say(f"\nFigures written to {RESULTS.relative_to(REPO)}")
        return 0
    except Exception:
        say("\nBENCHMARK FAILED:")
        traceback.print_exc()
        return 1
    finally:
        moto.stop()
        cluster.stop()
        if not args.keep:
            shutil.rmtree(cluster.root, ignore_errors=True)
            shutil.rmtree(WORK, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plain or not timescaledb_available():
        say("Mode: plain PostgreSQL" + ("" if args.plain else " (TimescaleDB is not installed for PostgreSQL 15)"))
    backup_env.ensure_sample(REPO, SAMPLE, say)
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())

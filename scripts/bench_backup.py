"""`make bench` (backup): the nightly DAG's dump and verify steps against a bare `pg_dump -Fc` / `pg_restore`.

    python scripts/bench_backup.py                        # 3 rounds, medians
    python scripts/bench_backup.py --repeat 5 --keep
    python scripts/bench_backup.py --part-size 8 --part-size 64   # also (b) with those part sizes

Set-up (untimed): a throw-away, durable (fsync on) PostgreSQL 15 cluster under .local/bench/pg-backup,
TimescaleDB preloaded where installed (``--plain``: not); moto's S3 server on loopback (a child process); the
project schema, and tickers + ohlcv_data + technical_analysis of a >= 1M-bar sample (.local/bench/backup_1m.db,
generated once) loaded with the migration's own loader; aggregates refreshed and old chunks compressed as the
policies would have done by the night of a backup. Background jobs stay off so every round sees the same
database. The steps reach it through the ``quant_postgres`` Airflow connection, as the tasks do.

Each round times, after ``sync`` and a CHECKPOINT each:

(a) a bare ``pg_dump -Fc`` to a local file: the dump's baseline;
(b) the ``dump`` task's function, ``nightly_steps.dump`` with a fresh hook: pg_dump in an exported snapshot streamed
    into an S3 multipart upload (SHA-256 on the way, part size from the database's size, 2 parts in flight,
    server-side encryption AES256), row counts in that snapshot, the manifest beside the object, ops.backups;
(c) a bare ``pg_restore`` of (a)'s file into a new database (TimescaleDB's pre/post restore steps around it,
    the DAG's restore jobs): the restore's baseline;
(d) the ``verify`` task's function, ``nightly_steps.verify``: fetch the object + SHA-256, restore into a scratch
    database, compare with the manifest, drop it, mark verified and move ``latest``.

(a)/(b) alternate their order from round to round, and so do (c)/(d). Probes follow, in no ratio: pg_dump
through a pipe into SHA-256 without the bucket; on (a)'s file, SHA-256 alone and the upload alone with 1/2/4
parts in flight. Medians are printed with (b)/(a) against the goal (at most 1.2x), (d)/(c) and the restore
part of (d) against (c), and written to .local/bench/backup-results.json. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import shutil
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "scripts")]
# As `make` exports them; set before anything imports Airflow (the hooks read quant_postgres / quant_s3 through it).
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".local" / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DEFAULT_TIMEZONE", "Asia/Seoul")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # the hook's info lines are not our output

from bench import backup_cpu, backup_env, cpu  # noqa: E402
from bench import backup_legs as legs_  # noqa: E402
from bench import backup_report as report  # noqa: E402
from bench.backup_report import BASELINE, OURS, RESTORE_BASE, VERIFY, Leg  # noqa: E402
from pgcluster import Cluster, free_port, timescaledb_available  # noqa: E402
from quantdbops import CONN_POSTGRES, CONN_S3  # noqa: E402
from quantdbops.backup import nightly_steps, store  # noqa: E402
from quantdbops.backup.dump import client_major  # noqa: E402
from quantdbops.backup.naming import TZ  # noqa: E402
from quantdbops.backup.results import BackupPlan, UploadedBackup  # noqa: E402
from quantdbops.backup.settings import BackupSettings  # noqa: E402
from quantdbops.backup.stream import part_size_for  # noqa: E402
from quantdbops.io.pg import PgTarget  # noqa: E402

DB = "quant_platform"
RESTORE_DB = "bench_bare_restore"
BENCH_DIR = REPO / ".local" / "bench"
SAMPLE = BENCH_DIR / "backup_1m.db"
WORK = BENCH_DIR / "backup-work"
RESULTS = BENCH_DIR / "backup-results.json"
BUCKET = "quant-db-backups-bench"
IN_FLIGHT = (2, 1, 4)  # the upload-alone probe; 2 is what upload_stream uses by default (the DAG's)


def say(text: str = "") -> None:
    print(text, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the median of each step is reported")
    ap.add_argument("--plain", action="store_true", help="plain PostgreSQL even where TimescaleDB is installed")
    ap.add_argument("--port", type=int, help="port of the benchmark's own cluster (default: a free one)")
    ap.add_argument("--keep", action="store_true", help="keep the stopped cluster and the work directory")
    ap.add_argument("--part-size", type=int, action="append", default=[], metavar="MB",
                    help="also time (b) with this multipart part size (5..5120 MB); repeatable")
    ap.add_argument("--no-probes", action="store_true", help="skip the SHA-256 and upload-alone probes")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if any(not 5 <= mb <= 5120 for mb in args.part_size):
        ap.error("--part-size must be 5..5120 (S3's part sizes, MB)")
    return args


class Runner:
    """Times one step after ``sync`` + CHECKPOINT, noting its CPU by process and how busy others kept the machine."""

    def __init__(self, target: PgTarget, postmaster: int | None, moto: int | None) -> None:
        self.target = target
        self.postmaster = postmaster
        self.moto = moto
        self.other_cores: list[float] = []

    def settle(self) -> None:
        os.sync()  # the previous step's dirty pages must not be written back during this one
        with self.target.connect(autocommit=True) as c:
            c.execute("CHECKPOINT")

    def timed(self, leg: Leg, rep: int, repeat: int, fn: Callable[[], tuple[int, dict[str, float]]]) -> None:
        self.settle()
        before, split = cpu.sample(self.postmaster), backup_cpu.sample(self.postmaster, self.moto)
        started = time.perf_counter()
        size, parts = fn()
        seconds = time.perf_counter() - started
        after = backup_cpu.sample(self.postmaster, self.moto)
        others = cpu.other_cores(before, cpu.sample(self.postmaster), seconds)
        leg.seconds.append(seconds)
        leg.dump_bytes.append(size)
        leg.add_parts(parts)
        if split and after:
            leg.add_cpu(after.minus(split))
        if others is not None:
            leg.other_cores.append(others)
            self.other_cores.append(others)
        say(f"  [{rep}/{repeat}] {leg.label:<46} {seconds:8.2f} s  ({size / 1e6:,.1f} MB"
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


def set_up(cluster: Cluster, moto: backup_env.MotoServer) -> backup_env.DbFacts:
    """Start both servers, the two Airflow connections, load and settle the database (all untimed)."""
    cluster.destroy()  # a leftover of an earlier run may be in the other mode or hold other data
    cluster.start()
    cluster.createdb(DB)
    os.environ[f"AIRFLOW_CONN_{CONN_POSTGRES.upper()}"] = json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": cluster.port, "login": "postgres", "schema": DB})
    say(f"PostgreSQL 15 cluster on 127.0.0.1:{cluster.port} ({cluster.data}), fsync on, background jobs off")
    moto.start()
    os.environ[f"AIRFLOW_CONN_{CONN_S3.upper()}"] = json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": moto.endpoint, "region_name": "us-east-1"}})
    backup_env.s3_client(moto.endpoint).create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    say(f"moto S3 server (child process) on {moto.endpoint}, bucket {BUCKET}")
    say("Loading the database (untimed)...")
    mode = backup_env.load_database(cluster.dsn(DB), SAMPLE, say)
    backup_env.settle_database(cluster.dsn(DB), mode, say)
    return backup_env.db_facts(cluster.dsn(DB))


def make_legs(part_sizes: list[int]) -> dict[str, Leg]:
    legs = {BASELINE: Leg(BASELINE, "(a) bare pg_dump -Fc to a local file"),
            OURS: Leg(OURS, "(b) DAG dump, streamed to the bucket"),
            RESTORE_BASE: Leg(RESTORE_BASE, "(c) bare pg_restore of (a)'s file"),
            VERIFY: Leg(VERIFY, "(d) DAG verify: fetch, restore, compare, drop")}
    for mb in part_sizes:
        legs[f"{OURS}_part_{mb}mb"] = Leg(f"{OURS}_part_{mb}mb", f"(b') DAG dump, {mb} MB parts", part_mb=mb)
    return legs


Step = Callable[[], tuple[int, dict[str, float]]]


def dump_step(target: PgTarget, plan: BackupPlan, s: BackupSettings, run_id: str,
              keep: dict[str, UploadedBackup] | None = None) -> Step:
    """(b) as a timed step; ``keep["uploaded"]`` receives its result (what verify is handed)."""
    def run() -> tuple[int, dict[str, float]]:
        d, parts = legs_.dag_dump(target, plan, s, run_id)
        if keep is not None:
            keep["uploaded"] = d
        return d.size_bytes, parts
    return run


def verify_step(target: PgTarget, dumped: dict[str, UploadedBackup], s: BackupSettings) -> Step:
    def run() -> tuple[int, dict[str, float]]:
        d = dumped["uploaded"]
        _, parts = legs_.dag_verify(target, d, s)
        return d.size_bytes, parts
    return run


def run_rounds(args: argparse.Namespace, cluster: Cluster, moto: backup_env.MotoServer,
               facts: backup_env.DbFacts) -> tuple[dict[str, Leg], dict[str, list[float]], Runner]:
    target = PgTarget(conn_id=CONN_POSTGRES)
    WORK.mkdir(parents=True, exist_ok=True)
    s = BackupSettings(bucket=BUCKET, local_dir=WORK, verify=True, aws_conn_id=CONN_S3, work_dir=WORK)
    legs = make_legs(args.part_size)
    probes: dict[str, list[float]] = {}
    runner = Runner(target, cpu.postmaster_pid(cluster.data), moto.proc.pid if moto.proc else None)
    bare = WORK / "bare.dump"
    warm = time.perf_counter()
    legs_.bare_pg_dump(target, bare)  # warm-up, untimed: every leg then reads a database already in memory
    say(f"Warm-up pg_dump (untimed): {time.perf_counter() - warm:.2f} s")
    base_when = datetime.now(TZ).replace(microsecond=0)
    say(f"Running {args.repeat} rounds ((a)/(b) and (c)/(d) alternate their order; then the probes)...")
    for rep in range(1, args.repeat + 1):
        when = base_when + timedelta(minutes=rep)
        plan = nightly_steps.preflight(target, store.make_hook(s.aws_conn_id), s, when)  # untimed: its own task
        dumped: dict[str, UploadedBackup] = {}
        pairs: list[list[tuple[Leg, Step]]] = [
            [(legs[BASELINE], functools.partial(legs_.bare_pg_dump, target, bare)),
             (legs[OURS], dump_step(target, plan, s, f"bench-backup-{rep}", keep=dumped))],
            [(legs[RESTORE_BASE], functools.partial(legs_.bare_pg_restore, target, RESTORE_DB, bare,
                                                    tsdb_version=facts.tsdb_version, jobs=s.restore_jobs)),
             (legs[VERIFY], verify_step(target, dumped, s))]]
        for steps in pairs:
            for leg, fn in steps if rep % 2 else steps[::-1]:
                runner.timed(leg, rep, args.repeat, fn)
        legs_.drop_database(target, RESTORE_DB)
        for i, leg in enumerate(lg for lg in legs.values() if lg.part_mb):
            variant = dataclasses.replace(s, part_size=(leg.part_mb or 0) * store.MB)
            hook = store.make_hook(s.aws_conn_id)
            p = nightly_steps.preflight(target, hook, variant, when + timedelta(seconds=i + 1))
            runner.timed(leg, rep, args.repeat, dump_step(target, p, variant, f"bench-backup-{rep}-{leg.part_mb}"))
        if not args.no_probes:
            run_probes(runner, bare, s, facts.size_bytes, probes)
        backup_env.empty_bucket(backup_env.s3_client(moto.endpoint), s.bucket)  # moto keeps objects in memory
    return legs, probes, runner


def run_probes(runner: Runner, bare: Path, s: BackupSettings, db_size: int, probes: dict[str, list[float]]) -> None:
    """Where the streamed dump's time may go: pg_dump through a pipe into SHA-256 without the bucket; on (a)'s
    file, hashing alone and the upload alone."""
    runner.settle()
    probes.setdefault("pg_dump -Fc | SHA-256, no upload", []).append(legs_.pipe_only(runner.target))
    runner.settle()
    probes.setdefault("SHA-256 alone (this process)", []).append(legs_.sha256_seconds(bare))
    for n in IN_FLIGHT:
        runner.settle()
        name = f"upload alone to moto, {n} part{'s' if n > 1 else ''} in flight" + (" (the DAG's)" if n == 2 else "")
        probes.setdefault(name, []).append(legs_.upload_only(bare, s, f"probe/in-flight-{n}.dump", db_size, n))


def print_results(header: dict[str, Any], legs: dict[str, Leg], probes: dict[str, list[float]],
                  runner: Runner) -> None:
    facts = header["database"]
    say()
    say("=" * 110)
    say(f"Backup benchmark: {facts['mode']} (PostgreSQL {facts['pg_version']}"
        + (f", TimescaleDB {facts['tsdb_version']})" if facts["tsdb_version"] else ")")
        + f", {header['repeat']} rounds, medians")
    say(f"Database {DB}: {facts['size_bytes'] / 1e6:,.1f} MB (pg_database_size); rows: "
        + ", ".join(f"{t} {n:,}" for t, n in facts["rows"].items()))
    say(f"Dump (custom format, default compression): {(legs[OURS].size or 0) / 1e6:,.1f} MB streamed "
        f"(bare pg_dump's file: {(legs[BASELINE].size or 0) / 1e6:,.1f} MB)")
    say(f"Machine: {header['machine']['cores']} cores ({header['machine']['cpu']}), SHARED with other work; "
        f"pg_dump {header['pg_dump_major']}; fsync={facts['settings']['fsync']}, "
        f"shared_buffers={facts['settings']['shared_buffers']}")
    say(f"S3: moto on loopback (plain HTTP); parts of {header['part_size_bytes'] // store.MB} MB (from the "
        f"database's size, as the DAG), 2 in flight, server-side encryption {header['encryption']}; "
        f"restore jobs {header['restore_jobs']} (the DAG's)")
    for table in (report.leg_table(legs), *(report.parts_table(legs[k]) for k in (OURS, RESTORE_BASE, VERIFY)),
                  report.cpu_table(legs)):
        say()
        say(table)
    if probes:
        say()
        say(report.probe_table(probes, legs[BASELINE].size))
    say()
    for line in report.goal_lines(legs):
        say(line)
    say()
    for line in report.busy_lines(runner.other_cores, int(header["machine"]["cores"] or 0)):
        say(line)
    say("NOTE: S3 is moto's in-memory server on loopback (its own process, on the same 2 cores): no network, no "
        "real S3 latency or bandwidth; over plain HTTP botocore also signs each part's SHA-256 (HTTPS would not).")
    say("NOTE: the machine has 2 cores shared with other engineers' tests and benchmarks; pg_dump, the SHA-256, "
        "boto3, moto and PostgreSQL compete for them.")
    say("NOTE: (b) and (d) are the functions the dump and verify tasks call; Airflow's own task overhead (worker "
        "start, XCom) and the untimed preflight are not in them.")


def benchmark(args: argparse.Namespace) -> int:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    BENCH_DIR.chmod(0o755)  # the postgres OS user (runuser when root) reaches its cluster below it
    cluster = Cluster(BENCH_DIR / "pg-backup", args.port or free_port(), fsync=True,
                      timescaledb=False if args.plain else None, background_jobs=False)
    moto = backup_env.MotoServer(free_port())
    try:
        facts = set_up(cluster, moto)
        legs, probes, runner = run_rounds(args, cluster, moto, facts)
        s = BackupSettings(bucket=BUCKET)
        header = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "repeat": args.repeat,
                  "database": {"name": DB, "size_bytes": facts.size_bytes, "mode": facts.mode,
                               "pg_version": facts.pg_version, "tsdb_version": facts.tsdb_version,
                               "rows": facts.rows, "settings": facts.settings},
                  "sample": str(SAMPLE), "machine": machine_info(), "pg_dump_major": client_major(),
                  "s3": "moto in-memory server on loopback (child process): upload figures are a lower bound",
                  "part_size_bytes": part_size_for(facts.size_bytes), "in_flight": 2,
                  "encryption": s.encryption.algorithm, "restore_jobs": s.restore_jobs,
                  "other_processes_cores": {"mean": round(statistics.fmean(runner.other_cores), 2),
                                            "max": round(max(runner.other_cores), 2)} if runner.other_cores else None}
        print_results(header, legs, probes, runner)
        report.write_json(RESULTS, report.as_json(header, legs, probes))
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

"""`make bench`: load the same generated OHLCV table into the same target three ways, print rows/s and ratios.

    python scripts/bench_load.py                  # data/bench_1m.db (generated if missing), 3 runs each
    python scripts/bench_load.py --repeat 5 --plain
    python scripts/bench_load.py --target pk-only  # the issue's reference table: its primary key only
    python scripts/bench_load.py --target pk-only --shape all   # every data shape, one after the other

The methods, each into the project's ``ohlcv_data`` (primary key, checks, the seeds' 3 secondary indexes;
a hypertable, or monthly range partitions created beforehand in plain mode), emptied before every run:

1. ours: ``quantdbops.migration.target_load.load_table`` with the default producer processes, and with one;
2. pgloader (``data only`` into the existing table, REAL cast to numeric through a string), verified;
3. the physical limit: server-side ``COPY`` of a file pre-rendered by our producer (the same bytes),
   as is and with the secondary indexes dropped before and rebuilt after (what our loader does).

With ``--target pk-only`` the same legs load a plain table with the same columns, NOT NULLs and primary key
and nothing else (no CHECKs, no secondary indexes, no hypertable or partitions): the conditions the issue's
reference rates were measured in. Validation is skipped there (it checks the schema's indexes and features).

With ``--shape`` the same is done for each named data shape of the generator (``scripts/sample/shapes.py``:
the same 1,008,000 rows with every timestamp distinct, every REAL at full precision, SQLite's CURRENT_TIMESTAMP
text...), each from its own file (data/bench_1m-<shape>.db, generated if missing; the sample shape's is
data/bench_1m.db) on a fresh cluster, and a closing table puts the shapes side by side with their ratios
against the goals and the CPU seconds per 1M rows of our producer side and of the server.

After each of our loads the migration's validation (``Validator.run`` for tickers + ohlcv_data) is timed.
The runs interleave the methods; each method's median is reported. A throw-away, durable (fsync on)
PostgreSQL 15 cluster is started under .local/bench/pg-load and stopped at the end; results also go to
.local/bench/load-results.json. Nothing is asserted: the figures are printed against the issue's goals.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "scripts")]

import psycopg  # noqa: E402

from bench import cpu, pgloader_leg, rawcopy, report  # noqa: E402
from bench import shapes as shape_report  # noqa: E402
from bench.report import OURS, PGLOADER, RAW_COPY, RAW_COPY_INDEXES_AFTER, Leg, Validation  # noqa: E402
from bench.shapes import OURS_OTHER_WORKERS, ShapeRun  # noqa: E402
from pgcluster import Cluster, free_port, timescaledb_available  # noqa: E402
from quantdbops.io.pg import DbMode, connect  # noqa: E402
from quantdbops.migration.producer_pool import default_workers  # noqa: E402
from quantdbops.migration.source import open_source  # noqa: E402
from quantdbops.migration.source_plan import SliceFilter  # noqa: E402
from quantdbops.migration.target_load import load_table  # noqa: E402
from quantdbops.migration.validate import Validator  # noqa: E402
from quantdbops.registry import OHLCV_DATA, TICKERS  # noqa: E402
from quantdbops.schema.apply import apply_schema  # noqa: E402
from quantdbops.schema.partitions import ensure_partitions  # noqa: E402
from sample import generate, read_manifest, write_manifest  # noqa: E402
from sample.shapes import SHAPES  # noqa: E402

DB = "quant_platform"
BENCH_DIR = REPO / ".local" / "bench"
DEFAULT_SOURCE = REPO / "data" / "bench_1m.db"
SAMPLE_SIZE = {"tickers_per_region": 400, "days": 420}  # 1,008,000 OHLCV rows
MIN_ROWS = 1_000_000
SCHEMA_TARGET, PK_ONLY_TARGET = "schema", "pk-only"
SAMPLE_SHAPE = "sample"


def say(text: str = "") -> None:
    """Print at once (the runs take minutes; make shows the lines as they come)."""
    print(text, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path,
                    help=f"SQLite source (default {DEFAULT_SOURCE.relative_to(REPO)}, generated if missing)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each method; the median is reported")
    ap.add_argument("--plain", action="store_true", help="plain PostgreSQL even where TimescaleDB is installed")
    ap.add_argument("--port", type=int, help="port of the benchmark's own cluster (default: a free one)")
    ap.add_argument("--keep", action="store_true", help="keep the stopped cluster and the rendered files")
    ap.add_argument("--target", choices=(SCHEMA_TARGET, PK_ONLY_TARGET), default=SCHEMA_TARGET,
                    help="the project's ohlcv_data (default) or a plain table with its primary key only")
    ap.add_argument("--shape", nargs="+", choices=(*SHAPES, "all"), metavar="SHAPE",
                    help=f"data shapes to run one after the other ({', '.join(SHAPES)}, or all), each from its "
                         "own generated file; with --source, the one shape that file holds (a label)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    args.shapes = list(SHAPES) if args.shape and "all" in args.shape else list(dict.fromkeys(args.shape or ()))
    if args.source is not None and len(args.shapes) > 1:
        ap.error("--source names one file: give at most one --shape with it")
    return args


def shape_source(shape: str) -> Path:
    """The generated 1M-row file of a shape: data/bench_1m.db for the sample, data/bench_1m-<shape>.db else."""
    return DEFAULT_SOURCE if shape == SAMPLE_SHAPE else DEFAULT_SOURCE.with_name(f"bench_1m-{shape}.db")


# --- set-up (untimed) -------------------------------------------------------------------------------
def _generated_as(path: Path, shape: str) -> bool:
    """The file is there and its manifest says it was generated in this shape and size."""
    manifest = read_manifest(path)
    wanted = {"shape": shape, "defects": False, **SAMPLE_SIZE}
    return manifest is not None and all(manifest.get(k) == v for k, v in wanted.items())


def ensure_sample(path: Path, shape: str | None = None) -> int:
    """The source's OHLCV row count. With ``shape``, the shape's 1M-row file is generated first unless its
    manifest says it is that shape already; without, only when the file is missing (a file of one's own)."""
    if (not path.exists()) if shape is None else not _generated_as(path, shape):
        shape = shape or SAMPLE_SHAPE
        say(f"Generating {path} ({shape} shape, {SAMPLE_SIZE['tickers_per_region']} tickers per region x "
            f"{SAMPLE_SIZE['days']} days, ~15 s)...")
        path.parent.mkdir(parents=True, exist_ok=True)
        manifest = generate(path, **SAMPLE_SIZE, shape=shape)
        write_manifest(manifest, path)
    sconn = open_source(path)
    try:
        rows = sconn.execute("SELECT count(*) FROM ohlcv_data").fetchone()[0]
    finally:
        sconn.close()
    if rows < MIN_ROWS:
        say(f"NOTE: {path} holds {rows:,} OHLCV rows, fewer than the {MIN_ROWS:,} the issue asks for")
    return rows


def machine_info() -> dict[str, object]:
    """Cores, CPU model, memory, OS and Python."""
    model = ""
    meminfo = ""
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "")
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        pass
    mem_kb = next((int(ln.split()[1]) for ln in meminfo.splitlines() if ln.startswith("MemTotal:")), 0)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": os.cpu_count(), "usable_cores": usable, "cpu": model or platform.processor(),
            "memory_gb": round(mem_kb / 1024 / 1024, 1), "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def start_cluster(args: argparse.Namespace) -> Cluster:
    """A fresh cluster under .local/bench/pg-load, durable like production (fsync, synchronous commit)."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    BENCH_DIR.chmod(0o755)  # the postgres OS user reads the rendered COPY file below it
    cluster = Cluster(BENCH_DIR / "pg-load", args.port or free_port(), fsync=True,
                      timescaledb=False if args.plain else None, background_jobs=False)
    cluster.destroy()  # a leftover of an earlier run may have been made in the other mode
    cluster.start()
    cluster.createdb(DB)
    return cluster


def prepare_target(dsn: str, source: Path, target: str = SCHEMA_TARGET) -> tuple[DbMode, float]:
    """Apply the schema and load tickers once (our loader checks ohlcv rows against them)."""
    with connect(dsn, autocommit=True) as pg:
        mode = apply_schema(pg).mode
        if target == PK_ONLY_TARGET:
            reduce_to_primary_key(pg)
    sconn = open_source(source)
    try:
        with connect(dsn) as pg:
            started = time.perf_counter()
            result = load_table(sconn, pg, TICKERS, SliceFilter(), run_id="bench-tickers", mode=mode,
                                progress=lambda _msg: None)
            seconds = time.perf_counter() - started
        if plain_partitions_needed(mode):
            first, last = sconn.execute("SELECT min(date), max(date) FROM ohlcv_data").fetchone()
            with connect(dsn, autocommit=True) as pg:
                ensure_partitions(pg, OHLCV_DATA, date.fromisoformat(first), date.fromisoformat(last))
    finally:
        sconn.close()
    say(f"tickers: {result.loaded:,} rows loaded once in {seconds:.2f} s (not part of the comparison)")
    return mode, seconds


def plain_partitions_needed(mode: DbMode) -> bool:
    return not mode.timescaledb and OHLCV_DATA.partitioned


def reduce_to_primary_key(pg: psycopg.Connection) -> None:
    """Replace ohlcv_data by a plain table with its columns, NOT NULLs and primary key only."""
    pg.execute("CREATE TABLE public.ohlcv_data_pk (LIKE public.ohlcv_data INCLUDING DEFAULTS INCLUDING GENERATED)")
    pg.execute("DROP TABLE public.ohlcv_data CASCADE")  # its views and aggregates go too: a bench database
    pg.execute("ALTER TABLE public.ohlcv_data_pk RENAME TO ohlcv_data")
    pg.execute(f"ALTER TABLE public.ohlcv_data ADD PRIMARY KEY ({', '.join(OHLCV_DATA.key)})")


def versions(dsn: str, mode: DbMode, pgloader_exe: str | None) -> dict[str, str]:
    """PostgreSQL, TimescaleDB, pgloader, psycopg and SQLite versions, and the durability settings."""
    with connect(dsn, autocommit=True) as pg:
        settings = {name: pg.execute(f"SHOW {name}").fetchone()[0]
                    for name in ("fsync", "synchronous_commit", "shared_buffers", "max_wal_size")}
        available = pg.execute("SELECT default_version FROM pg_available_extensions "
                               "WHERE name = 'timescaledb'").fetchone()
    tsdb = (mode.tsdb_version if mode.timescaledb
            else f"not used (plain mode; {available[0]} installed)" if available else "not installed")
    return {"postgresql": mode.pg_version, "timescaledb": tsdb or "",
            "pgloader": pgloader_leg.pgloader_version(pgloader_exe) if pgloader_exe else "not installed",
            "psycopg": psycopg.__version__, "sqlite": sqlite3.sqlite_version,
            "settings": ", ".join(f"{k}={v}" for k, v in settings.items())}


def empty_target(dsn: str) -> None:
    """Every run starts from an empty table, a fresh checkpoint and no dirty pages of earlier writes
    (the rendered files, the last run's table) for the kernel to flush while the next run is timed."""
    with connect(dsn, autocommit=True) as pg:
        pg.execute("TRUNCATE public.ohlcv_data")
        pg.execute("CHECKPOINT")
    os.sync()


# --- the timed legs ---------------------------------------------------------------------------------
def run_ours(dsn: str, source: Path, mode: DbMode, workers: int, run_id: str) -> tuple[float, int]:
    """Time ``load_table`` (one transaction: truncate, COPY, index rebuild, checksums, run record)."""
    sconn = open_source(source)
    try:
        with connect(dsn) as pg:
            started = time.perf_counter()
            result = load_table(sconn, pg, OHLCV_DATA, SliceFilter(), run_id=run_id, mode=mode,
                                workers=workers, progress=lambda _msg: None)
            seconds = time.perf_counter() - started
    finally:
        sconn.close()
    if result.rejected:
        raise RuntimeError(f"our loader quarantined {sum(result.rejected.values()):,} rows "
                           f"({dict(result.rejected)}): the comparison needs a clean source")
    return seconds, result.loaded


def run_validation(dsn: str, source: Path, mode: DbMode, validation: Validation) -> float:
    """Time the migration's validation of tickers + ohlcv_data, as its DAG task runs it."""
    sconn = open_source(source)
    try:
        with connect(dsn, autocommit=True) as pg:
            started = time.perf_counter()
            results = Validator(sconn, pg, [TICKERS, OHLCV_DATA], SliceFilter(), mode).run()
            seconds = time.perf_counter() - started
    finally:
        sconn.close()
    validation.seconds.append(seconds)
    validation.checks = len(results)
    validation.failed += [f"{r.check} {r.table or ''} {r.region or ''}: expected {r.expected}, got {r.actual}"
                          for r in results if r.status == "fail"]
    return seconds


def run_raw_copy(dsn: str, rendered: rawcopy.RenderedFile, rebuild_indexes: bool) -> tuple[float, int]:
    """Time the server-side COPY of the pre-rendered file (optionally with the index rebuild)."""
    with connect(dsn, autocommit=True) as pg:
        seconds, rows = rawcopy.copy_file(pg, OHLCV_DATA, rendered, rebuild_indexes=rebuild_indexes)
    if rows != rendered.rows:
        raise RuntimeError(f"COPY loaded {rows:,} rows, the file holds {rendered.rows:,}")
    return seconds, rows


class WrongResultError(Exception):
    """The method finished but the table does not hold the source's rows: its time is no valid rate."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


def pgloader_diagnosis(run: pgloader_leg.PgloaderRun, problems: list[str]) -> str:
    """Why pgloader's result is not valid: what it reported, what the check found, its first error."""
    reported = "?" if run.reported_rows is None else f"{run.reported_rows:,}"
    parts = [f"pgloader exited {run.returncode} reporting {reported} rows loaded, {run.reported_errors or '?'} errors"]
    parts += problems
    if run.errors:
        parts.append(f"its first error: {run.errors[0][:300]}")
    parts.append(f"log: {run.log}")
    return "; ".join(parts)


def run_pgloader(dsn: str, exe: str, command_file: Path, prepared: pgloader_leg.PreparedSource,
                 log: Path) -> tuple[float, int]:
    """Time the pgloader process, then check its result; a wrong result raises ``WrongResultError``."""
    run = pgloader_leg.run(exe, command_file, command_file.parent, log)
    with connect(dsn, autocommit=True) as pg:
        problems = pgloader_leg.verify(pg, prepared)
    if problems or run.returncode != 0:
        raise WrongResultError(pgloader_diagnosis(run, problems), run.seconds)
    return run.seconds, prepared.rows


@dataclass
class Runner:
    """Runs legs on the benchmark cluster: each on an emptied table, timed, with the machine's other load."""

    dsn: str
    repeat: int
    postmaster: int | None
    other_cores: list[float] = field(default_factory=list)

    def timed(self, leg: Leg, rep: int, fn: Callable[[], tuple[float, int]]) -> bool:
        """One run of a leg; records its seconds, or why its result is wrong (that run is not counted; the
        later rounds run it again) or why it failed (then it is not run again)."""
        if leg.status != "ok":
            return False
        empty_target(self.dsn)
        before = cpu.sample(self.postmaster)
        started = time.perf_counter()
        try:
            seconds, rows = fn()
        except WrongResultError as exc:
            leg.wrong_runs.append(f"run {rep} ({exc.seconds:.2f} s): {exc}")
            say(f"  [{rep}/{self.repeat}] {leg.label:<44} {exc.seconds:8.2f} s  RESULT WRONG, not counted: {exc}")
            return False
        except Exception as exc:
            leg.status, leg.note = "failed", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
            say(f"  [{rep}/{self.repeat}] {leg.label}: FAILED: {leg.note}")
            return False
        after = cpu.sample(self.postmaster)
        others = cpu.other_cores(before, after, time.perf_counter() - started)
        leg.seconds.append(seconds)
        leg.client_cpu.append(after.client - before.client)
        leg.server_cpu.append(after.server - before.server)
        leg.rows = rows
        if others is not None:
            leg.other_cores.append(others)
            self.other_cores.append(others)
        say(f"  [{rep}/{self.repeat}] {leg.label:<44} {seconds:8.2f} s  {rows / seconds:>10,.0f} rows/s  "
            f"CPU {after.client - before.client:5.1f} + {after.server - before.server:4.1f} s (client + server)"
            + ("" if others is None else f", others {others:.1f} cores"))
        return True


# --- report -----------------------------------------------------------------------------------------
def header_lines(header: dict) -> list[str]:
    """Machine, versions and target settings."""
    m, v = header["machine"], header["versions"]
    return [
        "",
        f"Load benchmark: {header['table']} ({header['target']} target), {header['rows']:,} rows "
        f"from {header['source']}, "
        f"median of {header['repeat']} runs per method ({header['mode']} mode)",
        f"Machine: {m['cores']} cores ({m['usable_cores']} usable), {m['cpu']}, {m['memory_gb']} GB RAM, "
        f"{m['os']}, Python {m['python']}",
        f"Versions: PostgreSQL {v['postgresql']}, TimescaleDB {v['timescaledb']}, pgloader {v['pgloader']}, "
        f"psycopg {v['psycopg']}, SQLite {v['sqlite']}",
        f"Target: local cluster, {v['settings']}; our loader's default workers = {header['default_workers']}",
        "",
    ]


def print_results(header: dict, legs: dict[str, Leg], validation: Validation) -> None:
    """Header, the method table, the machine's other load, the goal lines and the notes."""
    for line in header_lines(header):
        say(line)
    say(report.method_table(legs))
    say("")
    for line in report.busy_lines(header["other_processes_cores"], header["machine"]["cores"]):
        say(line)
    for line in report.goal_lines(legs, validation):
        say(line)
    if header["code_changed_during_run"]:
        say("WARNING: plugins/quantdbops changed while the benchmark ran (producer processes import it afresh): "
            "the runs may mix two versions of the loader; run it again")
    for leg in legs.values():
        if leg.note:
            say(f"NOTE {leg.label}: {leg.note}")


# --- main -------------------------------------------------------------------------------------------
def other_workers(workers: int) -> int:
    """The producer count the default is compared with: 2 when the default is 1, else 1."""
    return 2 if workers == 1 else 1


def _workers_label(n: int) -> str:
    return f"{n} worker" + ("s" if n > 1 else "")


def make_legs(workers: int, pgloader_exe: str | None, target: str = SCHEMA_TARGET) -> dict[str, Leg]:
    """The methods in report order; pgloader is skipped (with how to install it) where it is missing."""
    legs = {
        OURS: Leg(OURS, f"ours: load_table, {_workers_label(workers)} (default)"),
        OURS_OTHER_WORKERS: Leg(OURS_OTHER_WORKERS, f"ours: load_table, {_workers_label(other_workers(workers))}"),
        PGLOADER: Leg(PGLOADER, "pgloader (data only, 2 workers)"),
        RAW_COPY: Leg(RAW_COPY, "raw COPY from file (indexes kept)"),
        RAW_COPY_INDEXES_AFTER: Leg(RAW_COPY_INDEXES_AFTER, "raw COPY from file, indexes built after"),
    }
    if target == PK_ONLY_TARGET:
        legs[RAW_COPY_INDEXES_AFTER].status = "not-applicable"
        legs[RAW_COPY_INDEXES_AFTER].note = "the pk-only table has no secondary index to build after"
    if pgloader_exe is None:
        legs[PGLOADER].status = "skipped"
        legs[PGLOADER].note = f"pgloader is not installed: {pgloader_leg.INSTALL_HINT}"
    return legs


@dataclass
class Inputs:
    """What the legs read, prepared untimed: the rendered COPY file and pgloader's SQLite file."""

    rendered: rawcopy.RenderedFile
    pgloader_exe: str | None
    prepared: pgloader_leg.PreparedSource | None = None
    command_file: Path | None = None
    pgloader_logs: str = "pgloader"  # pgloader's log of run N: BENCH_DIR / f"{pgloader_logs}-run{N}.log"


def prepare_inputs(cluster: Cluster, source: Path, work: Path, pgloader_exe: str | None) -> Inputs:
    """Render the COPY file and pgloader's SQLite file once; neither is part of any timing."""
    say("Pre-rendering the raw COPY file with our producer (untimed)...")
    sconn = open_source(source)
    try:
        with connect(cluster.dsn(DB), autocommit=True) as pg:
            rendered = rawcopy.render_copy_file(sconn, pg, OHLCV_DATA, work / "ohlcv_data.copy")
    finally:
        sconn.close()
    say(f"  {rendered.rows:,} rows, {rendered.size_bytes / 1e6:,.0f} MB, {rendered.rejected} rejected")
    inputs = Inputs(rendered, pgloader_exe)
    if pgloader_exe:
        say("Preparing pgloader's SQLite file with the target's column names (untimed)...")
        inputs.prepared = pgloader_leg.prepare_source(source, work / "pgloader_source.db", OHLCV_DATA)
        inputs.command_file = work / "ohlcv_data.load"
        inputs.command_file.write_text(pgloader_leg.command_text(inputs.prepared, cluster.uri(DB)),
                                       encoding="utf-8")
        say(f"  {inputs.prepared.rows:,} rows; command file {inputs.command_file} (CAST {pgloader_leg.CAST_RULE})")
    return inputs


def run_rounds(runner: Runner, legs: dict[str, Leg], inputs: Inputs, source: Path, mode: DbMode,
               workers: int, validate: bool = True) -> Validation:
    """Every round runs every method once (interleaved, so drift hits all alike); validation after ours."""
    dsn, validation = runner.dsn, Validation()
    if not validate:
        validation.not_run = ("not timed on this target (validation checks the schema's indexes and features; "
                              "--target schema times it)")
    exe, prepared, command_file = inputs.pgloader_exe, inputs.prepared, inputs.command_file
    say(f"Running {runner.repeat} rounds of every method (each on an emptied table, after a CHECKPOINT)...")
    other = other_workers(workers)
    for rep in range(1, runner.repeat + 1):
        ours_ok = runner.timed(legs[OURS], rep, lambda rep=rep: run_ours(dsn, source, mode, workers, f"bench-{rep}-d"))
        if ours_ok and validate:
            seconds = run_validation(dsn, source, mode, validation)
            say(f"  [{rep}/{runner.repeat}] {'validation after our load':<44} {seconds:8.2f} s")
        runner.timed(legs[OURS_OTHER_WORKERS], rep, lambda rep=rep: run_ours(
            dsn, source, mode, other, f"bench-{rep}-{other}"))
        if exe and prepared and command_file:
            runner.timed(legs[PGLOADER], rep, lambda rep=rep: run_pgloader(
                dsn, exe, command_file, prepared, BENCH_DIR / f"{inputs.pgloader_logs}-run{rep}.log"))
        runner.timed(legs[RAW_COPY], rep, lambda: run_raw_copy(dsn, inputs.rendered, False))
        runner.timed(legs[RAW_COPY_INDEXES_AFTER], rep, lambda: run_raw_copy(dsn, inputs.rendered, True))
    for leg in legs.values():
        leg.settle()
    return validation


def code_stamp() -> float:
    """Latest change to the package's code: producer processes re-import it, so it must not change mid-run."""
    return max(p.stat().st_mtime for p in (REPO / "plugins" / "quantdbops").rglob("*.py"))


def results_path(target: str, shape: str | None) -> Path:
    name = "load-results" + ("" if target == SCHEMA_TARGET else f"-{target}") + (f"-{shape}" if shape else "")
    return BENCH_DIR / f"{name}.json"


def benchmark(args: argparse.Namespace, source: Path, source_rows: int, shape: str | None = None) -> ShapeRun:
    """Start the cluster, prepare every leg's input untimed, run the legs interleaved, print, stop."""
    pgloader_exe = pgloader_leg.find_pgloader()
    if pgloader_exe is None:
        say(f"pgloader not found on PATH: the pgloader leg is skipped; {pgloader_leg.INSTALL_HINT}")
    work = BENCH_DIR / "load-work"
    stamp = code_stamp()
    cluster = start_cluster(args)
    try:
        dsn = cluster.dsn(DB)
        say(f"PostgreSQL 15 cluster on 127.0.0.1:{cluster.port} ({cluster.data}), fsync on")
        mode, tickers_seconds = prepare_target(dsn, source, args.target)
        workers = default_workers(server_shares_cores=True)  # the benchmark's cluster runs here
        legs = make_legs(workers, pgloader_exe, args.target)
        inputs = prepare_inputs(cluster, source, work, pgloader_exe)
        # One set of pgloader logs per target and shape: a failed run's log, named in the report, outlives the
        # next shape's runs.
        inputs.pgloader_logs = f"pgloader-{args.target}-{shape or 'source'}"
        for stale in BENCH_DIR.glob(f"{inputs.pgloader_logs}-run*.log"):
            stale.unlink()
        runner = Runner(dsn, args.repeat, cpu.postmaster_pid(cluster.data))
        validation = run_rounds(runner, legs, inputs, source, mode, workers, validate=args.target == SCHEMA_TARGET)
        header = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "table": OHLCV_DATA.name, "target": args.target, "rows": source_rows, "source": str(source),
            "shape": shape, "repeat": args.repeat,
            "mode": mode.name, "machine": machine_info(), "versions": versions(dsn, mode, pgloader_exe),
            "default_workers": workers, "tickers_load_seconds": round(tickers_seconds, 3),
            "pgloader_cast_rule": pgloader_leg.CAST_RULE if pgloader_exe else None,
            "other_processes_cores": report.summary(runner.other_cores),
            "code_changed_during_run": code_stamp() != stamp,
        }
        print_results(header, legs, validation)
        out = results_path(args.target, shape)
        report.write_json(out, report.as_json(header, legs, validation))
        say(f"\nFigures written to {out}")
        return ShapeRun(shape or source.name, str(source), legs, workers, other_workers(workers))
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(cluster.root, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plain or not timescaledb_available():
        say("Mode: plain PostgreSQL (monthly range partitions)"
            + ("" if args.plain else "; TimescaleDB is not installed for PostgreSQL 15"))
    if not args.shapes or args.source is not None:
        source = (args.source or DEFAULT_SOURCE).resolve()
        rows = ensure_sample(source)
        run = benchmark(args, source, rows, args.shapes[0] if args.shapes else None)
        return 0 if run.legs[OURS].status == "ok" else 1
    runs = []
    for n, shape in enumerate(args.shapes, 1):
        say(f"\n=== Shape {n} of {len(args.shapes)}: {shape} ===")
        source = shape_source(shape).resolve()
        runs.append(benchmark(args, source, ensure_sample(source, shape), shape))
    print_shapes(args, runs)
    return 0 if all(run.legs[OURS].status == "ok" for run in runs) else 1


def print_shapes(args: argparse.Namespace, runs: list[ShapeRun]) -> None:
    """The closing table: every shape's medians, ratios against the goals and CPU per 1M rows."""
    say(f"\nEvery shape ({args.target} target, median of {args.repeat} runs per method; each shape's methods "
        "ran interleaved on a fresh cluster):")
    say(shape_report.summary_table(runs))
    busy = [run.shape for run in runs if (run.others() or 0.0) > report.BUSY_CORES]
    if busy:
        say(f"WARNING: other processes kept the machine busy while {', '.join(busy)} ran ('others' cores'): "
            "those ratios are noisy; compare shapes measured on a quiet machine")
    for run in runs:  # a method with runs left out: its median is of fewer runs than the others'
        for leg in run.legs.values():
            if leg.wrong_runs and leg.status == "ok":
                say(f"NOTE {run.shape}: {leg.label}: {leg.note}")
    say(shape_report.furthest_line(runs))
    out = BENCH_DIR / f"load-results-{args.target}-shapes.json"
    report.write_json(out, {"target": args.target, "repeat": args.repeat, "shapes": shape_report.as_json(runs)})
    say(f"Figures written to {out}")


if __name__ == "__main__":
    sys.exit(main())

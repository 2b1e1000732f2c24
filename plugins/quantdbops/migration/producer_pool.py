"""Running the producers: in-process for a small table, one process per rowid range for a big one, their COPY
bytes forwarded to the load as they come, with progress (rows, rows/s, ETA) every few seconds."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import wait

import psycopg

from quantdbops.migration.producer import ProducerResult, read_source, worker
from quantdbops.migration.source_plan import SliceFilter
from quantdbops.registry import Table

PROGRESS_SECONDS = 5.0
# Tables smaller than this are read in-process: starting producer processes would cost more than it saves.
PARALLEL_MIN_ROWS = 50_000


def default_workers(server_shares_cores: bool = False) -> int:
    """Producer processes: one per core, at most 4; one fewer when PostgreSQL runs on this machine, where its
    COPY needs a core of its own (the load benchmark, ``make bench``, compares one producer with two)."""
    cores = os.cpu_count() or 1
    return max(1, min(4, cores - 1 if server_shares_cores else cores))


PRODUCERS_ENV = "QUANT_MIGRATION_PRODUCERS"  # producer processes per big table, overriding the default
MAX_PRODUCERS = 16


def configured_workers(server_shares_cores: bool) -> int:
    """``QUANT_MIGRATION_PRODUCERS`` when set (1 to 16), else ``default_workers``."""
    raw = os.environ.get(PRODUCERS_ENV, "").strip()
    if not raw:
        return default_workers(server_shares_cores)
    n = int(raw) if raw.isdigit() else 0
    if not 1 <= n <= MAX_PRODUCERS:
        raise ValueError(f"{PRODUCERS_ENV}={raw!r} is not a number of producer processes from 1 to "
                         f"{MAX_PRODUCERS}: fix or unset it on the workers (unset: one per core, one fewer when "
                         "PostgreSQL runs on the same machine, at most 4). Nothing was loaded.")
    return n


def server_is_local(pg: psycopg.Connection | None) -> bool:
    """The connection reaches a server on this machine (a Unix socket or the loopback address)."""
    if pg is None:
        return False
    host = pg.info.host
    return host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")


@contextmanager
def main_script_hidden() -> Iterator[None]:
    """Start spawned processes without making them re-run the parent's ``__main__`` script.

    Under a real Airflow worker that script is the ``airflow`` CLI, and a task process points
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN at a blocked URL: a child importing the CLI dies before it runs
    anything. The producers need nothing from ``__main__``, only ``quantdbops``.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield  # run with -m or interactively: multiprocessing does not re-run a script
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def stream(sconn: sqlite3.Connection, path: str, table: Table, flt: SliceFilter, known: list | None,
            dups: dict[int, int], total: int, write: Callable[[bytes], None], say: Callable[[str], None],
            workers: int, progress_seconds: float, parallel_min_rows: int = PARALLEL_MIN_ROWS) -> ProducerResult:
    """Run the producers (in-process, or one process per rowid range) and forward their bytes."""
    started = last = time.monotonic()
    done = 0

    def forward(data: bytes) -> None:
        nonlocal done, last
        write(data)
        done += data.count(b"\n")
        now = time.monotonic()
        if now - last >= progress_seconds:
            rate = done / (now - started)
            eta = (total - done) / rate if rate and total > done else 0.0
            say(f"{table.name}: {done:,}/{total:,} rows loaded ({100 * done / max(total, 1):.0f}%), "
                f"{rate:,.0f} rows/s, ETA {eta:.0f}s")
            last = now

    lo, hi = sconn.execute(f'SELECT min(rowid), max(rowid) FROM main."{table.source}"').fetchone()
    if workers <= 1 or total < parallel_min_rows or lo is None:
        return read_source(path, table.name, flt, None, known, dups, forward)
    step = (hi - lo) // workers + 1
    ranges = [(lo + i * step, min(hi, lo + (i + 1) * step - 1)) for i in range(workers)]
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited connections or threads
    readers, procs = [], []
    with main_script_hidden():
        for rng in ranges:
            r, w = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=worker, args=(w, path, table.name, flt, rng, known, dups), daemon=True)
            proc.start()
            w.close()
            readers.append(r)
            procs.append(proc)
    say(f"{table.name}: {workers} producer processes over rowids {lo:,}..{hi:,}")
    total_result = ProducerResult()
    errors = []
    try:
        live = list(readers)
        while live:
            for r in wait(live):
                try:
                    data = r.recv_bytes()
                    if data:
                        forward(data)
                        continue
                    status, payload = r.recv()
                except EOFError:  # the process died without a word: its stderr (in the task log) says why
                    proc = procs[readers.index(r)]
                    proc.join(timeout=5)
                    status, payload = "error", (f"producer process {proc.pid} exited with code {proc.exitcode} "
                                                "before it finished; its traceback is above in this log")
                live.remove(r)
                if status == "ok":
                    total_result.merge(payload)
                else:
                    errors.append(payload)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    if errors:
        raise RuntimeError(f"a producer of {table.name} failed:\n{errors[0]}")
    return total_result

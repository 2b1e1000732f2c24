"""The pgloader leg: the same rows, loaded by pgloader into the existing target table, then verified.

pgloader reads SQLite tables by name and maps columns by name, so it gets a SQLite file (prepared
untimed) whose table has exactly the target's loaded columns, already mapped the way our loader maps
them (``rsi_14`` -> ``rsi``, NULL region -> the ticker's region). It loads with ``data only`` into the
table the schema created (key, checks, indexes), with a casting rule that sends SQLite REAL as a decimal
string to ``numeric``: without ``using float-to-string`` pgloader writes Lisp floats such as ``4.86d0``,
PostgreSQL refuses every batch, and pgloader still exits 0 (NOTES.md). So its result is always checked:
row count, the exact sum of ``close`` and every column of sampled rows against the source.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from quantdbops import PLATFORM_TZ
from quantdbops.migration.source_plan import TablePlan
from quantdbops.registry import Column, Table

INSTALL_HINT = ("install it with `sudo apt-get install -y pgloader` (Debian/Ubuntu package `pgloader`; "
                "elsewhere see https://pgloader.readthedocs.io/en/latest/install.html), then re-run `make bench`")
CAST_RULE = "type real to numeric using float-to-string"
SAMPLE_ROWS = 200
TIMEOUT_SECONDS = 1800
_SQLITE_TYPES = {"numeric": "REAL", "int": "INTEGER", "bigint": "INTEGER"}  # anything else: TEXT
_SUMMARY = re.compile(r"Total import time\s+(\S+)\s+(\d+)\s")


def find_pgloader() -> str | None:
    return shutil.which("pgloader")


def pgloader_version(exe: str) -> str:
    """'3.6.7~devel (SBCL 2.2.9.debian)' from ``pgloader --version``."""
    res = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60, check=False)
    lines = res.stdout.strip().splitlines()
    version = re.search(r'"([^"]+)"', lines[0]) if lines else None
    sbcl = next((ln.split("with ", 1)[-1] for ln in lines[1:] if "compiled with" in ln), "")
    return (version.group(1) if version else (lines[0] if lines else "unknown")) + (f" ({sbcl})" if sbcl else "")


@dataclass
class PreparedSource:
    """The SQLite file pgloader reads, and what its result must equal."""

    path: Path
    table: Table
    rows: int
    close_sum: Decimal
    samples: list[dict[str, object]] = field(default_factory=list)


def prepare_source(source: Path, out: Path, table: Table) -> PreparedSource:
    """Write ``out``: one table named like the target, with the target's loaded columns (mapped), in order."""
    plan = TablePlan(table)
    cols = table.loaded_columns
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    conn = sqlite3.connect(out, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("ATTACH DATABASE ? AS src", (str(source),))
        conn.execute(f'CREATE TABLE main."{table.name}" ('
                     + ", ".join(f'"{c.name}" {_SQLITE_TYPES.get(c.kind, "TEXT")}' for c in cols) + ")")
        join = f'LEFT JOIN src.tickers t ON t.ticker = s."{table.ticker_column}"' if table.ticker_column else ""
        conn.execute(f'INSERT INTO main."{table.name}" SELECT {", ".join(plan.raw_expr(c) for c in cols)} '
                     f'FROM src."{table.source}" s {join} ORDER BY s.rowid')
        conn.execute("DETACH DATABASE src")
        rows = conn.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]
        close_sum = sum((Decimal(repr(v)) for (v,) in conn.execute(f'SELECT close FROM "{table.name}"')),
                        Decimal(0))
        step = max(1, rows // SAMPLE_ROWS)
        cur = conn.execute(f'SELECT * FROM "{table.name}" WHERE (rowid - 1) % ? = 0 LIMIT ?', (step, SAMPLE_ROWS))
        names = [d[0] for d in cur.description]
        samples = [dict(zip(names, r, strict=True)) for r in cur]
    finally:
        conn.close()
    out.chmod(0o644)
    return PreparedSource(path=out, table=table, rows=rows, close_sum=close_sum, samples=samples)


def command_text(prepared: PreparedSource, pg_uri: str) -> str:
    """The pgloader command file: data only, into the existing table, REAL cast to numeric via a string."""
    return (
        "LOAD DATABASE\n"
        f"     FROM sqlite://{prepared.path.resolve()}\n"
        f"     INTO {pg_uri}\n\n"
        " WITH data only, truncate, workers = 2, concurrency = 1\n\n"
        f"  SET PostgreSQL PARAMETERS timezone to '{PLATFORM_TZ}'\n\n"
        f" CAST {CAST_RULE}\n\n"
        f" INCLUDING ONLY TABLE NAMES LIKE '{prepared.table.name}';\n"
    )


@dataclass
class PgloaderRun:
    """One pgloader process: wall time, exit status, what it reported, its ERROR lines."""

    seconds: float
    returncode: int
    reported_rows: int | None
    reported_errors: str | None
    errors: list[str]
    log: Path


def run(exe: str, command_file: Path, workdir: Path, log: Path) -> PgloaderRun:
    """Run pgloader on ``command_file``; the timed span is the whole process (start-up included)."""
    started = time.perf_counter()
    with log.open("w") as fh:
        res = subprocess.run([exe, "--root-dir", str(workdir), str(command_file)], stdout=fh,
                             stderr=subprocess.STDOUT, timeout=TIMEOUT_SECONDS, check=False)
    seconds = time.perf_counter() - started
    text = log.read_text(errors="replace")
    summary = _SUMMARY.search(text)
    errors = [ln.split(" ", 1)[-1] for ln in text.splitlines() if " ERROR " in ln or " FATAL " in ln]
    return PgloaderRun(seconds=seconds, returncode=res.returncode,
                       reported_rows=int(summary.group(2)) if summary else None,
                       reported_errors=summary.group(1) if summary else None, errors=errors, log=log)


def _expected(col: Column, value: object) -> object:
    """The value PostgreSQL must hold for a source value (exact decimal of a float, local time)."""
    if value is None:
        return None
    if col.kind == "numeric":
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    if col.kind in ("int", "bigint"):
        return int(value)  # type: ignore[call-overload]
    if col.kind == "date":
        return date.fromisoformat(str(value))
    if col.kind == "timestamptz":
        ts = datetime.fromisoformat(str(value))
        return ts if ts.tzinfo else ts.replace(tzinfo=ZoneInfo(col.source_tz))
    return str(value)


def verify(pg: psycopg.Connection, prepared: PreparedSource) -> list[str]:
    """What is wrong with the loaded table (empty when it equals the source): count, sum(close), samples."""
    table = prepared.table
    ident = sql.Identifier("public", table.name)
    problems = []
    count, close_sum = pg.execute(sql.SQL("SELECT count(*), coalesce(sum(close), 0) FROM {}").format(ident)).fetchone()
    if count != prepared.rows:
        problems.append(f"count(*) = {count:,}, the source has {prepared.rows:,} rows")
    elif close_sum != prepared.close_sum:
        problems.append(f"sum(close) = {close_sum}, the source's exact sum is {prepared.close_sum}")
    cols = table.loaded_columns
    query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(sql.Identifier(c.name) for c in cols), ident,
        sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in table.key))
    differing: dict[str, int] = {}
    examples: list[str] = []
    missing = 0
    for src in prepared.samples:
        key = [_expected(table.column(k), src[k]) for k in table.key]
        row = pg.execute(query, key).fetchone()
        if row is None:
            missing += 1
            continue
        for col, got in zip(cols, row, strict=True):
            want = _expected(col, src[col.name])
            if got != want:
                differing[col.name] = differing.get(col.name, 0) + 1
                if len(examples) < 3:
                    examples.append(f"{col.name}: source {want} -> loaded {got}")
    if missing:
        problems.append(f"{missing} of {len(prepared.samples)} sampled rows missing")
    if differing:
        problems.append(f"sampled rows differ from the source in {', '.join(sorted(differing))} "
                        f"(e.g. {'; '.join(examples)})")
    return problems

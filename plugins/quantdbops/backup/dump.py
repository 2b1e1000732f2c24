"""``pg_dump`` / ``pg_restore`` processes: the right client version, credentials only in the environment.

The dump is custom format (``-Fc``), the one format both the nightly and the restore DAG use. ``DumpProcess``
hands ``pg_dump``'s stdout to whoever reads it (the nightly streams it into the bucket: ``backup.stream``);
``run_pg_dump`` writes it to a file, hashing on the way (a local copy, the benchmark's baseline). The client
programs get the connection's every libpq argument as a connection string in ``--dbname`` and the password
only as ``PGPASSWORD`` in their environment, never on a command line.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo

DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin"
PG_BIN_ENV = "QUANT_PG_BIN"
CHUNK = 1 << 20


class PgToolError(RuntimeError):
    """A PostgreSQL client program failed; the message carries its exit code and stderr tail."""


def pg_bin(path: str | Path | None = None) -> Path:
    """The client binaries directory: the argument, else ``$QUANT_PG_BIN``, else Debian's PostgreSQL 15,
    else the directory of the ``pg_dump`` on PATH (an image with another client major, e.g. the compose one).
    Whichever it is, ``check_client_compatible`` proves it can dump the server before anything runs."""
    chosen = path or os.environ.get(PG_BIN_ENV)
    if chosen:
        return Path(chosen)
    if Path(DEFAULT_PG_BIN).is_dir():
        return Path(DEFAULT_PG_BIN)
    on_path = shutil.which("pg_dump")
    return Path(on_path).resolve().parent if on_path else Path(DEFAULT_PG_BIN)


def tool(name: str, bin_dir: str | Path | None = None) -> str:
    exe = pg_bin(bin_dir) / name
    if not exe.is_file():
        raise PgToolError(f"{exe} not found: install the PostgreSQL client of the server's major version or "
                          f"set {PG_BIN_ENV} / the bin_dir argument to its directory")
    return str(exe)


def client_target(args: Mapping[str, object], dbname: str | None = None) -> tuple[str, dict[str, str]]:
    """(``--dbname`` value, environment) of a client program for the libpq arguments ``args``: every argument
    but the password in a connection string (TLS files, options, keepalives, ...), the password in
    ``PGPASSWORD`` only; no ``PG*`` variable of the worker's own environment leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if args.get("password") not in (None, ""):
        env["PGPASSWORD"] = str(args["password"])
    env["PGAPPNAME"] = "quant-db-ops-backup"
    keep = {k: str(v) for k, v in args.items() if k not in ("password", "conninfo") and v not in (None, "")}
    if dbname:
        keep["dbname"] = dbname
    return make_conninfo(str(args.get("conninfo") or ""), **keep), env


def client_major(bin_dir: str | Path | None = None) -> int:
    out = subprocess.run([tool("pg_dump", bin_dir), "--version"], capture_output=True, text=True, check=True)
    m = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    if not m:
        raise PgToolError(f"cannot read pg_dump's version from {out.stdout!r}")
    return int(m.group(1))


def check_client_compatible(server_version: str, bin_dir: str | Path | None = None) -> int:
    """pg_dump refuses servers newer than itself: fail early with the fix, not after a long wait."""
    client = client_major(bin_dir)
    server = int(server_version.split(".", maxsplit=1)[0])
    if client < server:
        raise PgToolError(f"pg_dump {client} cannot dump a PostgreSQL {server} server: point {PG_BIN_ENV} at the "
                          f"PostgreSQL {server} client binaries")
    return client


@dataclass(frozen=True)
class DumpResult:
    """A finished dump: where, how big, its SHA-256, how long it took."""

    path: str
    size_bytes: int
    sha256: str
    seconds: float
    warnings: str

    @property
    def mb_per_s(self) -> float:
        return self.size_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


class DumpProcess:
    """``pg_dump --format=custom`` of the database of ``args``, its stdout read by the caller (``read``), then
    ``finish`` (exit status and stderr); ``kill`` when the reader gave up."""

    def __init__(self, args: Mapping[str, object], *, bin_dir: str | Path | None = None,
                 snapshot: str | None = None, compress: int | None = None) -> None:
        target, env = client_target(args)
        cmd = [tool("pg_dump", bin_dir), "--format=custom", "--no-password", f"--dbname={target}"]
        if snapshot:
            cmd.append(f"--snapshot={snapshot}")
        if compress is not None:
            cmd.append(f"--compress={int(compress)}")
        self.started = time.perf_counter()
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._err, env=env)
        assert self.proc.stdout is not None
        self.read = self.proc.stdout.read

    def finish(self) -> tuple[float, str]:
        """(seconds, pg_dump's warnings); ``PgToolError`` when it failed."""
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        rc = self.proc.wait()
        self._err.seek(0)
        stderr = self._err.read().decode("utf-8", "replace")[-4000:].strip()
        self._err.close()
        if rc != 0:
            raise PgToolError(f"pg_dump exited with {rc}: {stderr or '(no message)'}")
        return time.perf_counter() - self.started, stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._err.close()


def run_pg_dump(args: Mapping[str, object], out_path: str | Path, *, bin_dir: str | Path | None = None,
                snapshot: str | None = None, compress: int | None = None) -> DumpResult:
    """Dump the database of ``args`` to ``out_path`` (custom format), hashing while it streams; the file has
    its name only once ``pg_dump`` succeeded."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    digest = hashlib.sha256()
    size = 0
    proc = DumpProcess(args, bin_dir=bin_dir, snapshot=snapshot, compress=compress)
    try:
        with open(partial, "wb") as fh:
            while chunk := proc.read(CHUNK):
                digest.update(chunk)
                fh.write(chunk)
                size += len(chunk)
        seconds, stderr = proc.finish()
    except BaseException:
        proc.kill()
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    return DumpResult(str(out), size, digest.hexdigest(), seconds, stderr)


def sha256_file(path: str | Path) -> tuple[int, str]:
    """(size, SHA-256) of a file on disk."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def run_pg_restore(args: Mapping[str, object], dbname: str, dump_path: str | Path, *,
                   bin_dir: str | Path | None = None, jobs: int = 1) -> float:
    """Restore a custom-format dump into ``dbname``; stops at the first error. Returns seconds taken."""
    target, env = client_target(args, dbname)
    cmd = [tool("pg_restore", bin_dir), "--no-password", "--exit-on-error", f"--dbname={target}"]
    if jobs > 1:
        cmd.append(f"--jobs={int(jobs)}")
    cmd.append(str(dump_path))
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, env=env, check=False)
    if res.returncode != 0:
        tail = res.stderr.decode("utf-8", "replace")[-4000:].strip()
        raise PgToolError(f"pg_restore into {dbname} exited with {res.returncode}: {tail or '(no message)'}")
    return time.perf_counter() - start

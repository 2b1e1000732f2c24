"""``pg_dump`` / ``pg_restore`` processes: the right client version, credentials only in the environment.

The dump is custom format (``-Fc``), the one format both the nightly and the restore DAG use. Its bytes go
from ``pg_dump``'s stdout through SHA-256 into ``<name>.dump.partial``, renamed only when ``pg_dump``
succeeded: the checksum costs no second read and a half-written dump never looks finished.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin"
PG_BIN_ENV = "QUANT_PG_BIN"
CHUNK = 1 << 20
_LIBPQ_ENV = {"host": "PGHOST", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER",
              "password": "PGPASSWORD", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
              "connect_timeout": "PGCONNECT_TIMEOUT"}


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


def pg_env(conn_kwargs: dict[str, object], dbname: str | None = None) -> dict[str, str]:
    """The process environment for a client program: libpq variables, so no secret is on a command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for key, value in conn_kwargs.items():
        if key in _LIBPQ_ENV and value not in (None, ""):
            env[_LIBPQ_ENV[key]] = str(value)
    if dbname:
        env["PGDATABASE"] = dbname
    env.setdefault("PGAPPNAME", "quant-db-ops-backup")
    return env


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


def _stderr_tail(fh: object) -> str:
    fh.seek(0)  # type: ignore[attr-defined]
    return fh.read().decode("utf-8", "replace")[-4000:].strip()  # type: ignore[attr-defined]


def run_pg_dump(conn_kwargs: dict[str, object], out_path: str | Path, *, bin_dir: str | Path | None = None,
                snapshot: str | None = None, compress: int | None = None) -> DumpResult:
    """Dump the database of ``conn_kwargs`` to ``out_path`` (custom format), hashing while it streams."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    cmd = [tool("pg_dump", bin_dir), "--format=custom", "--no-password"]
    if snapshot:
        cmd.append(f"--snapshot={snapshot}")
    if compress is not None:
        cmd.append(f"--compress={int(compress)}")
    digest = hashlib.sha256()
    size = 0
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err, open(partial, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=pg_env(conn_kwargs))
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read(CHUNK):
                digest.update(chunk)
                fh.write(chunk)
                size += len(chunk)
        finally:
            proc.stdout.close()
            rc = proc.wait()
        stderr = _stderr_tail(err)
    if rc != 0:
        partial.unlink(missing_ok=True)
        raise PgToolError(f"pg_dump exited with {rc}: {stderr or '(no message)'}")
    os.replace(partial, out)
    return DumpResult(str(out), size, digest.hexdigest(), time.perf_counter() - start, stderr)


def sha256_file(path: str | Path) -> tuple[int, str]:
    """(size, SHA-256) of a file on disk."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def run_pg_restore(conn_kwargs: dict[str, object], dbname: str, dump_path: str | Path, *,
                   bin_dir: str | Path | None = None, jobs: int = 1) -> float:
    """Restore a custom-format dump into ``dbname``; stops at the first error. Returns seconds taken."""
    cmd = [tool("pg_restore", bin_dir), "--no-password", "--exit-on-error", f"--dbname={dbname}"]
    if jobs > 1:
        cmd.append(f"--jobs={int(jobs)}")
    cmd.append(str(dump_path))
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, env=pg_env(conn_kwargs, dbname), check=False)
    if res.returncode != 0:
        tail = res.stderr.decode("utf-8", "replace")[-4000:].strip()
        raise PgToolError(f"pg_restore into {dbname} exited with {res.returncode}: {tail or '(no message)'}")
    return time.perf_counter() - start

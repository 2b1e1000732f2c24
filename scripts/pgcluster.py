"""A throw-away PostgreSQL 15 cluster on loopback, for `make demo`, `make bench` and the tests.

Uses Debian's server binaries (/usr/lib/postgresql/15/bin). PostgreSQL refuses to run as root, so when
run as root the cluster belongs to the unprivileged ``postgres`` user and commands run through runuser.
TimescaleDB is preloaded where the extension is installed; pg_stat_statements always.

With ``tls`` (a CA-signed server certificate, ``tlscerts.make_server_certificates``) the cluster accepts TCP
connections only over TLS: ``ssl = on`` and a pg_hba.conf of ``hostssl`` lines (no ``host`` line), so a
client without TLS is refused; the Unix socket stays for the administrator. Clients verify the server
with ``sslmode=verify-full`` and the CA (``dsn()`` and ``uri()`` say so). The default cluster is unchanged.

CLI: python scripts/pgcluster.py start|stop|status --dir .local/pg --port 55432 [--tls-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tlscerts import ServerTls, make_server_certificates

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_SHARE_EXT = Path("/usr/share/postgresql/15/extension")
RUN_AS = "postgres"
# Every TCP client must use TLS: there is no `host` line, so a plain connection matches nothing and is
# refused ("no pg_hba.conf entry ..., no encryption"). The socket is the administrator's way in.
# The role ``CERT_ONLY_ROLE`` is admitted only with a client certificate the cluster's CA signed for it.
CERT_ONLY_ROLE = "cert_only"
TLS_ONLY_HBA = f"""\
# quant-db-ops TLS-only cluster: TCP connections must use TLS
local    all  all                 trust
hostssl  all  {CERT_ONLY_ROLE}  127.0.0.1/32   cert
hostssl  all  {CERT_ONLY_ROLE}  ::1/128        cert
hostssl  all  all  127.0.0.1/32   trust
hostssl  all  all  ::1/128        trust
"""


def timescaledb_available() -> bool:
    return (PG_SHARE_EXT / "timescaledb.control").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", RUN_AS, "--", *cmd]
    return cmd


def _chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(RUN_AS)
    for p in [path, *path.rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid)


@dataclass
class Cluster:
    """A cluster directory: ``data/`` plus the socket and log beside it."""

    root: Path
    port: int
    fsync: bool = True
    timescaledb: bool | None = None  # None: preload it where installed; False: plain PostgreSQL
    # False (tests): neither TimescaleDB policies nor autovacuum act behind a test's back (a test that counts
    # dead tuples before and after a dry run must see only what the code under test did).
    background_jobs: bool = True
    tls: ServerTls | None = None  # set: TLS-only (hostssl), the server presenting this certificate

    @property
    def with_timescaledb(self) -> bool:
        return timescaledb_available() if self.timescaledb is None else self.timescaledb

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    def dsn(self, dbname: str = "quant_platform") -> str:
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"
        if self.tls:
            dsn += f" sslmode=verify-full sslrootcert={self.tls.ca_cert}"
        return dsn

    def uri(self, dbname: str = "quant_platform") -> str:
        uri = f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"
        if self.tls:
            uri += f"?sslmode=verify-full&sslrootcert={self.tls.ca_cert}"
        return uri

    def running(self) -> bool:
        res = subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True, check=False)
        return res.returncode == 0

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL 15 server binaries not found in {PG_BIN}: "
                               "apt-get install postgresql (or run `make` targets as root once)")
        self.root.mkdir(parents=True, exist_ok=True)
        _chown_tree(self.root)
        subprocess.run(_as_owner([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                  "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"]),
                       check=True, capture_output=True)
        preload = "timescaledb,pg_stat_statements" if self.with_timescaledb else "pg_stat_statements"
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "shared_preload_libraries": f"'{preload}'",
            "max_connections": "100",
            "shared_buffers": "'256MB'",
            "maintenance_work_mem": "'256MB'",
            "max_wal_size": "'4GB'",
            "timezone": "'Asia/Seoul'",
            "timescaledb.telemetry_level": "off",
            # TimescaleDB's policies each take a worker; 8 is too few when they start together.
            "max_worker_processes": "16",
            "timescaledb.max_background_workers": "8" if self.background_jobs else "0",
            "autovacuum": "on" if self.background_jobs else "off",
            "fsync": "on" if self.fsync else "off",
            "synchronous_commit": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
        }
        if not self.with_timescaledb:
            for key in [k for k in settings if k.startswith("timescaledb.")]:
                del settings[key]
        if self.tls:
            settings.update(self._install_tls(self.tls))
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("\n# quant-db-ops local cluster\n")
            fh.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def _install_tls(self, tls: ServerTls) -> dict[str, str]:
        """Copy certificate and key into the data directory (the server wants its key private to it), make
        pg_hba.conf TLS-only; the settings that turn TLS on."""
        for src, name in ((tls.cert, "server.crt"), (tls.key, "server.key"), (tls.ca_cert, "ca.crt")):
            shutil.copyfile(src, self.data / name)
            (self.data / name).chmod(0o600)
        (self.data / "pg_hba.conf").write_text(TLS_ONLY_HBA, encoding="utf-8")
        # ssl_ca_file: the CA whose client certificates the `cert` lines accept
        return {"ssl": "on", "ssl_cert_file": "'server.crt'", "ssl_key_file": "'server.key'",
                "ssl_ca_file": "'ca.crt'"}

    def served_data_directory(self) -> Path:
        """The data directory of the server answering on this cluster's port."""
        import psycopg

        with psycopg.connect(self.dsn("postgres"), connect_timeout=10) as conn:
            return Path(conn.execute("SHOW data_directory").fetchone()[0]).resolve()

    def _require_own_server(self) -> None:
        """Another PostgreSQL on this port (a second checkout's cluster, a system one) must not be taken for
        this one: everything started here would write into it."""
        served = self.served_data_directory()
        if served != self.data.resolve():
            raise RuntimeError(
                f"port {self.port} is served by another PostgreSQL (data directory {served}), not by this "
                f"cluster ({self.data}). Nothing was written to it. Stop that server, or pick a free port "
                "(make ... PG_PORT=<port>).")

    def start(self) -> None:
        self.init()
        hba = (self.data / "pg_hba.conf").read_text(encoding="utf-8")
        if bool(self.tls) != (hba == TLS_ONLY_HBA):
            raise RuntimeError(f"{self.data} was initialised {'with' if hba == TLS_ONLY_HBA else 'without'} TLS; "
                               "destroy it (make clean) or use another directory to change that")
        if self.running():
            self._require_own_server()
            return
        _chown_tree(self.root)
        subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                                  "-o", f"-p {self.port}", "-w", "-t", "60", "start"]),
                       check=True, capture_output=True)
        deadline = time.monotonic() + 30
        while not self.running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {self.logfile}")
            time.sleep(0.2)
        self._require_own_server()

    def createdb(self, name: str = "quant_platform") -> None:
        res = subprocess.run(_as_owner([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                        "-U", "postgres", name]), capture_output=True, text=True, check=False)
        if res.returncode != 0 and "already exists" not in res.stderr:
            raise RuntimeError(f"createdb {name} failed: {res.stderr.strip()}")

    def stop(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            return
        subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                       capture_output=True, check=False)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["start", "stop", "status"])
    ap.add_argument("--dir", default=".local/pg")
    ap.add_argument("--port", type=int, default=55432)
    ap.add_argument("--db", default="quant_platform")
    ap.add_argument("--plain", action="store_true", help="do not preload TimescaleDB even where installed")
    ap.add_argument("--tls-dir", type=Path, help="TLS only: make a CA and a server certificate in this directory "
                                                 "(when the cluster is initialised); clients use its ca.crt")
    args = ap.parse_args(argv)
    tls = None
    if args.tls_dir and args.action == "start":
        tls_dir = args.tls_dir.resolve()
        tls = (ServerTls(tls_dir / "ca.crt", tls_dir / "server.crt", tls_dir / "server.key")
               if (tls_dir / "server.crt").exists() else make_server_certificates(tls_dir))
    cluster = Cluster(Path(args.dir).resolve(), args.port, timescaledb=False if args.plain else None, tls=tls)
    if args.action == "start":
        fresh = not (cluster.data / "PG_VERSION").exists()
        try:
            cluster.start()
        except RuntimeError as exc:
            print(f"pgcluster: {exc}", file=sys.stderr)
            return 1
        cluster.createdb(args.db)
        mode = ("with TimescaleDB preloaded" if cluster.with_timescaledb
                else "plain PostgreSQL (TimescaleDB not installed or --plain)")
        tls_note = f", TLS only, CA {tls.ca_cert}" if tls else ""
        print(f"PostgreSQL 15 {'initialised and ' if fresh else ''}running: {cluster.uri(args.db)} "
              f"({mode}{tls_note}); data in {cluster.data}")
    elif args.action == "stop":
        cluster.stop()
        print(f"PostgreSQL in {cluster.data} stopped")
    else:
        print("running" if cluster.running() else "stopped")
        return 0 if cluster.running() else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

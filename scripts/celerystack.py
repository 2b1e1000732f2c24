"""The CeleryExecutor pieces of a local Airflow (scripts/airflowstack.py): a Redis broker and Celery workers.

The production topology on one machine: the scheduler sends task instances through Redis to Celery
workers that share nothing with it or with each other but the metadata database (where Celery keeps its
results too), the DAGs folder and plugins, and what the tasks reach over the network (the target
PostgreSQL, S3). Each worker has a disk of its own (a directory) holding its HOME, TMPDIR,
``QUANT_BACKUP_DIR`` (the backup's default local_dir) and AIRFLOW_HOME (pid file, local task logs). Run as
root, every worker sees its own disk at one same path, in a mount namespace of its own, as separate
machines see theirs; so a local path handed from one task to the next names nothing on another worker.
Each has its own Celery node name (``worker1@<machine>``) and records its own hostname on the task
instances it runs (``celery_worker_path/quantdbops_worker_hostname.py`` as ``[core] hostname_callable``,
on the workers' PYTHONPATH only).

Workers on one machine cannot serve their task logs the way Airflow reads them (the api-server asks
``http://<ti.hostname>:<one port>/log/...``), so they serve none (``--skip-serve-logs``) and write them
remotely (``remote_log_folder``, e.g. ``s3://bucket/logs``, through ``remote_log_conn_id``); the api-server
reads them from there, as in a deployment whose workers come and go.

Redis listens on loopback on a free port, with its own directory and no persistence.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from celery_worker_path.quantdbops_worker_hostname import HOSTNAME_VAR
from pgcluster import free_port

SCRIPTS = Path(__file__).resolve().parent
WORKER_PATH = SCRIPTS / "celery_worker_path"  # the hostname callable's directory
HOSTNAME_CALLABLE = "quantdbops_worker_hostname.hostname"
REDIS_SERVER = Path(os.environ.get("REDIS_SERVER", "/usr/bin/redis-server"))
BACKUP_DIR_VAR = "QUANT_BACKUP_DIR"
# What a worker must not take from the scheduler's side: files in the stack's home.
_NOT_FOR_WORKERS = ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT")


def redis_server_missing() -> str | None:
    """Why Redis cannot run here, or None."""
    if not REDIS_SERVER.is_file():
        return (f"redis-server is not installed ({REDIS_SERVER} missing): apt-get install redis-server "
                "(`make test` installs it when run as root)")
    return None


@dataclass
class RedisBroker:
    """A ``redis-server`` on 127.0.0.1: its own directory, nothing saved to disk."""

    root: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [str(REDIS_SERVER), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root),
                "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no"]

    def wait_ready(self, timeout: float = 30) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)


def private_mounts_missing() -> str | None:
    """Why the workers cannot each get a private view of one path (``unshare --mount``), or None."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or not unshare:
        return ("private mounts need root and util-linux's unshare: each worker's disk is then only a directory "
                "of its own, which the others could still reach")
    res = subprocess.run([unshare, "--mount", "--propagation", "private", "true"], capture_output=True, text=True,
                         check=False)
    return f"unshare --mount failed: {res.stderr.strip()}" if res.returncode != 0 else None


@dataclass(frozen=True)
class CeleryWorker:
    """One worker as if on a machine of its own: ``disk`` holds everything it writes.

    The worker sees its disk at ``view``. With private mounts ``view`` is one path for every worker, each
    seeing its own disk there (a bind mount in its own mount namespace), as machines do: a path a task hands
    to the next through XCom names the same place on whichever worker runs that one, not the sender's file.
    Without them, ``view`` is ``disk``.
    """

    name: str  # worker1: the Celery node is worker1@<machine>, its task instances say hostname worker1
    disk: Path
    view: Path

    @property
    def private(self) -> bool:
        return self.view != self.disk

    # Where the harness finds them (a test looks for files left behind); the worker sees them under ``view``.
    @property
    def home(self) -> Path:
        return self.disk / "home"

    @property
    def tmp(self) -> Path:
        return self.disk / "tmp"

    @property
    def backup_dir(self) -> Path:
        return self.disk / "backups"

    @property
    def airflow_home(self) -> Path:
        return self.disk / "airflow"  # pid file, local copies of task logs

    @property
    def log(self) -> Path:
        return self.disk.parent / f"{self.name}.log"

    @property
    def node_name(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """The stack's environment (configuration, DB, API URL), with every place to write on its own disk."""
        for path in (self.home, self.tmp, self.backup_dir, self.airflow_home, self.view):
            path.mkdir(parents=True, exist_ok=True)
        seen = {path: self.view / path.relative_to(self.disk)
                for path in (self.home, self.tmp, self.backup_dir, self.airflow_home)}
        env = {k: v for k, v in base.items() if k not in _NOT_FOR_WORKERS}
        env.update({
            "HOME": str(seen[self.home]),
            "TMPDIR": str(seen[self.tmp]),  # tempfile.gettempdir() of the worker and of every task process
            BACKUP_DIR_VAR: str(seen[self.backup_dir]),
            "AIRFLOW_HOME": str(seen[self.airflow_home]),
            HOSTNAME_VAR: self.name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
            "PYTHONPATH": os.pathsep.join(p for p in (str(WORKER_PATH), base.get("PYTHONPATH", "")) if p),
        })
        return env

    def command(self, airflow: Path, concurrency: int) -> list[str]:
        worker = [str(airflow), "celery", "worker", "--celery-hostname", self.node_name,
                  "--concurrency", str(concurrency), "--skip-serve-logs"]
        if not self.private:
            return worker
        # A mount namespace of its own (no fork: the worker keeps this process id), its disk bound over ``view``.
        mount_then_exec = 'src=$1; dst=$2; shift 2; mount --bind "$src" "$dst" && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", mount_then_exec, "sh",
                str(self.disk), str(self.view), *worker]


@dataclass
class CeleryMode:
    """CeleryExecutor with a local Redis broker and ``workers`` workers under ``root``."""

    root: Path
    remote_log_folder: str  # s3://bucket/prefix: where workers write task logs and the api-server reads them
    remote_log_conn_id: str
    workers: int = 2
    concurrency: int = 2  # task slots per worker
    # Each worker sees its own disk at one common path (needs root); else each has a directory of its own.
    private_disks: bool = field(default_factory=lambda: private_mounts_missing() is None)
    broker: RedisBroker = field(init=False)

    def __post_init__(self) -> None:
        self.broker = RedisBroker(self.root / "redis")

    @property
    def worker_list(self) -> list[CeleryWorker]:
        disks = [(f"worker{i}", self.root / f"worker{i}") for i in range(1, self.workers + 1)]
        return [CeleryWorker(name, disk, self.root / "local-disk" if self.private_disks else disk)
                for name, disk in disks]

    def settings(self, metadata_uri: str) -> dict[str, str]:
        """The Airflow configuration of every component (results in the metadata DB, logs remote)."""
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": self.broker.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata_uri}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
            "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
            "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": self.remote_log_folder,
            "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": self.remote_log_conn_id,
        }

    def answering_workers(self, timeout: float = 2) -> set[str]:
        """Node names of the workers that answer a Celery ping through the broker."""
        from celery import Celery

        app = Celery(broker=self.broker.url)
        try:
            replies = app.control.ping(timeout=timeout) or []
        finally:
            app.close()
        return {name for reply in replies for name in reply}


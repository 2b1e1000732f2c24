"""A real Airflow 3 on loopback: api-server, scheduler, dag-processor (and triggerer) as separate processes.

Shared by `make airflow` (scripts/run_airflow.py) and the end-to-end tests (tests/e2e/). The metadata
database is PostgreSQL (LocalExecutor runs tasks side by side; SQLite would serialise them and lock),
the Airflow home is the caller's, the DAGs folder and plugins are this repository's. Everything listens
on 127.0.0.1: the API on the caller's port (``pgcluster.free_port()`` in the tests), the log servers,
which would otherwise take the fixed ports 8793/8794, on free ports picked here.

Each component runs in its own session and writes ``<home>/<component>.log``; ``stop()`` ends each
component with its whole process tree (LocalExecutor workers, task supervisors, task processes), SIGTERM
first, SIGKILL after a grace period, so nothing outlives a failed test.

With ``celery`` (``celerystack.CeleryMode``) the executor is the CeleryExecutor: the stack also starts a
Redis broker on loopback and Celery workers that share nothing with the rest but the metadata database,
the DAGs folder and plugins (their output goes to ``<celery root>/worker1.log``, ...); they are stopped like
the components, Redis last.

``AirflowApi`` is the operator's side: a JWT from ``POST /auth/token`` (simple auth manager), then the
public REST API ``/api/v2``.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celerystack import CeleryMode
from pgcluster import free_port

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO / "plugins"))  # quantdbops: the bundle's constants (pool name)
AIRFLOW = Path(sys.executable).with_name("airflow")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN = "admin"
HEAVY_DB_POOL_SLOTS = 2  # as airflow_settings.yaml and docker-compose.yaml set it
# Settings that make a small local Airflow react in seconds rather than minutes: new DAG files are
# listed every 5 s (default 300 s), the executor keeps few idle workers on a 2-core machine.
FAST_SETTINGS = {
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    "AIRFLOW__CORE__PARALLELISM": "8",
}


class AirflowError(RuntimeError):
    """Airflow did not start, or answered an API call with an error."""


def _free_ports(n: int) -> list[int]:
    return [free_port() for _ in range(n)]


@dataclass
class AirflowStack:
    """One Airflow installation: its home, metadata DB, port, and the processes once started."""

    home: Path
    metadata_uri: str  # SQLAlchemy URL of the metadata database (postgresql+psycopg2://...)
    port: int
    components: tuple[str, ...] = COMPONENTS
    settings: Mapping[str, str] = field(default_factory=dict)  # more AIRFLOW__* (or AIRFLOW_CONN_*) variables
    # True: ignore the caller's AIRFLOW__*/AIRFLOW_CONN_*/AIRFLOW_VAR_* variables (a test's Airflow must not
    # read `make`'s connections, which win over the metadata DB's); False: keep them (`make airflow`).
    clean_env: bool = True
    celery: CeleryMode | None = None  # None: LocalExecutor
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)
    log_server_ports: list[int] = field(default_factory=lambda: _free_ports(2), init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    def log(self, component: str) -> Path:
        """A component's output; ``celery-worker1`` and ``redis`` write beside their own directories."""
        if self.celery:
            if component == "redis":
                return self.celery.broker.root / "redis.log"
            for worker in self.celery.worker_list:
                if component == f"celery-{worker.name}":
                    return worker.log
        return self.home / f"{component}.log"

    def env(self) -> dict[str, str]:
        """The environment of every component and CLI call: the caller's, then this installation's."""
        from quantdbops import PLATFORM_TZ

        log_port, trigger_log_port = self.log_server_ports
        env = dict(os.environ)
        if self.clean_env:
            for key in [k for k in env if k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))]:
                del env[key]
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": PLATFORM_TZ,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_uri,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__EXPOSE_CONFIG": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            **FAST_SETTINGS,
            **(self.celery.settings(self.metadata_uri) if self.celery else {}),
            **self._keys(),
            **self.settings,
        })
        # Components start `airflow ...` children of their own: this virtualenv must come first.
        env["PATH"] = f"{AIRFLOW.parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _keys(self) -> dict[str, str]:
        """Secrets every component must share (signing of UI sessions and of the tasks' JWTs)."""
        keys_file = self.home / "stack-keys.json"
        if not keys_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            keys_file.write_text(json.dumps({"AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                                             "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32)}))
            keys_file.chmod(0o600)
        return json.loads(keys_file.read_text())

    def cli(self, *args: str) -> str:
        """Run an ``airflow`` CLI command against this installation; its output, or AirflowError."""
        res = subprocess.run([str(AIRFLOW), *args], env=self.env(), capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise AirflowError(f"airflow {' '.join(args)} failed ({res.returncode}):\n"
                               f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        return res.stdout

    def prepare(self) -> None:
        """Create the home, fix the admin's password, migrate the metadata database (idempotent)."""
        self.home.mkdir(parents=True, exist_ok=True)
        users = json.loads(self.passwords_file.read_text()) if self.passwords_file.exists() else {}
        if ADMIN in users:
            self.password = users[ADMIN]
        else:
            self.passwords_file.write_text(json.dumps({**users, ADMIN: self.password}) + "\n")
            self.passwords_file.chmod(0o600)
        self.cli("db", "migrate")

    def start(self) -> None:
        """Start every component (Celery: the broker first, the workers last); returns once the broker
        answers (``wait_ready`` waits for the rest)."""
        env = self.env()
        atexit.register(self.stop)  # also when the caller dies of an exception no finally saw
        if self.celery:
            self._spawn("redis", self.celery.broker.command(), env)
            self.celery.broker.wait_ready()
        for name in self.components:
            self._spawn(name, [str(AIRFLOW), name], env)
        for worker in self.celery.worker_list if self.celery else []:
            self._spawn(f"celery-{worker.name}", worker.command(AIRFLOW, self.celery.concurrency), worker.env(env))

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.log(name).parent.mkdir(parents=True, exist_ok=True)
        with self.log(name).open("ab") as fh:
            self.procs[name] = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def up(self) -> AirflowApi:
        """Prepare, start, wait until ready, set up what the DAGs need; the admin's API client."""
        self.prepare()
        self.start()
        self.wait_ready()
        api = AirflowApi(self.url, ADMIN, self.password)
        set_up_bundle(api)
        return api

    def exited(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def tail(self, component: str, lines: int = 30) -> str:
        path = self.log(component)
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 180) -> float:
        """Wait until the API answers and every started component heartbeats; the seconds it took."""
        started = time.monotonic()
        wanted = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
        health: dict[str, Any] = {}
        while time.monotonic() - started < timeout:
            if dead := self.exited():
                name = next(iter(dead))
                raise AirflowError(f"airflow {name} exited with {dead[name]} during start-up; last lines of "
                                   f"{self.log(name)}:\n{self.tail(name)}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as resp:
                    health = json.load(resp)
            except (OSError, ValueError):
                time.sleep(1)
                continue
            if all((health.get(key) or {}).get("status") == "healthy"
                   for comp, key in wanted.items() if comp in self.components) and self._workers_answer():
                return time.monotonic() - started
            time.sleep(1)
        missing = ""
        if self.celery:
            answered = self.celery.answering_workers()
            silent = sorted(w.node_name for w in self.celery.worker_list if w.node_name not in answered)
            missing = f"; Celery workers not answering: {silent}"
        raise AirflowError(f"Airflow not ready after {timeout:.0f}s (health: {health}{missing}); logs in "
                           f"{self.home}")

    def _workers_answer(self) -> bool:
        if not self.celery:
            return True
        return {w.node_name for w in self.celery.worker_list} <= self.celery.answering_workers()

    def stop(self, grace: float = 20) -> None:
        """End every component and everything it started: SIGTERM, then SIGKILL after ``grace`` seconds.
        The broker goes last, so the workers do not spend their shutdown reconnecting to it."""
        broker = {n: p for n, p in self.procs.items() if n == "redis"}
        _end_trees([p for n, p in self.procs.items() if n not in broker], grace)
        _end_trees(list(broker.values()), grace)
        self.procs.clear()

    def __enter__(self) -> AirflowStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _end_trees(procs: list[subprocess.Popen], grace: float) -> None:
    """SIGTERM each process with its whole tree, SIGKILL what is left after ``grace`` seconds."""
    import psutil

    victims: list[psutil.Process] = []
    for proc in procs:
        try:
            parent = psutil.Process(proc.pid)
            victims += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for proc in procs:
        _signal_group(proc.pid, signal.SIGTERM)
    for p in victims:
        _signal_proc(p, signal.SIGTERM)
    _, alive = psutil.wait_procs(victims, timeout=grace)
    for proc in procs:
        _signal_group(proc.pid, signal.SIGKILL)
    for p in alive:
        _signal_proc(p, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
    for proc in procs:
        proc.wait(timeout=5)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # each component leads its own session, so its group id is its pid
    except ProcessLookupError:
        pass


def _signal_proc(proc: Any, sig: signal.Signals) -> None:
    import psutil

    try:
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


def set_up_bundle(api: AirflowApi) -> None:
    """What the DAGs need in Airflow besides their connections: the heavy-database pool."""
    from quantdbops import HEAVY_DB_POOL

    api.set_pool(HEAVY_DB_POOL, HEAVY_DB_POOL_SLOTS,
                 "Caps concurrent heavy database tasks (bulk loads, pg_dump, VACUUM/REINDEX)")


def postgres_metadata_uri(host: str, port: int, dbname: str, user: str = "postgres") -> str:
    return f"postgresql+psycopg2://{user}@{host}:{port}/{dbname}"


class AirflowApi:
    """The public REST API as an operator uses it: a JWT from the simple auth manager, then ``/api/v2``."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        body = json.dumps({"username": username, "password": password}).encode()
        req = urllib.request.Request(f"{self.url}/auth/token", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.token = json.load(resp)["access_token"]

    def call(self, method: str, path: str, body: Any = None, *, query: Mapping[str, Any] | None = None,
             ok: Iterable[int] = (200, 201, 204)) -> Any:
        url = f"{self.url}/api/v2{path}" + (f"?{urllib.parse.urlencode(query, doseq=True)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode(errors="replace")
        if status not in set(ok):
            raise AirflowError(f"{method} {path} answered {status}: {text[:2000]}")
        return json.loads(text) if text else None

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, query=query or None)

    def set_pool(self, name: str, slots: int, description: str) -> None:
        """Create the pool, or set its slots if it exists."""
        body = {"name": name, "slots": slots, "description": description}
        existing = self.call("GET", f"/pools/{name}", ok=(200, 404))
        if existing and "slots" in existing:
            # Airflow 3.3 validates a patch of a pool as a whole pool (name, slots, include_deferred), whatever
            # the update mask: the pool's own include_deferred is sent back with it, only slots and description change
            self.call("PATCH", f"/pools/{name}", {**body, "include_deferred": existing.get("include_deferred", False)},
                      query={"update_mask": ["slots", "description"]})
        else:
            self.call("POST", "/pools", body)

    def set_connection(self, conn_id: str, fields: Mapping[str, Any]) -> None:
        """Create or replace a connection (``fields`` as in the API: conn_type, host, port, login, ...)."""
        body = {"connection_id": conn_id, **fields}
        if isinstance(body.get("extra"), dict):
            body["extra"] = json.dumps(body["extra"])
        self.call("DELETE", f"/connections/{conn_id}", ok=(204, 404))
        self.call("POST", "/connections", body)

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has serialised every DAG; their details by id."""
        wanted, found = set(dag_ids), {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for dag_id in wanted - set(found):
                dag = self.call("GET", f"/dags/{dag_id}/details", ok=(200, 404))
                if dag and dag.get("dag_id") == dag_id:
                    found[dag_id] = dag
            if set(found) == wanted:
                return found
            errors = self.get("/importErrors").get("import_errors", [])
            if errors:
                raise AirflowError("DAG files failed to import: " + "; ".join(
                    f"{e['filename']}: {e['stack_trace'][-500:]}" for e in errors))
            time.sleep(1)
        raise AirflowError(f"DAGs not parsed within {timeout:.0f}s: {sorted(wanted - set(found))}")

    def trigger(self, dag_id: str, conf: Mapping[str, Any], logical_date: str) -> dict[str, Any]:
        """Unpause the DAG and create a run; the run as the API returns it."""
        self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        return self.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": dict(conf)})

    def trigger_due_run(self, dag_id: str, conf: Mapping[str, Any]) -> dict[str, Any]:
        """Run a scheduled DAG's due run now, by hand, with ``conf``; the run.

        Unpausing a DAG whose cron time has passed (``catchup=False``) makes the scheduler start the latest
        due run at once, with the default params. So the run is created first, while the DAG is paused, at
        the logical date the scheduler would use (``next_dagrun_logical_date``), then the DAG is unpaused:
        the scheduler finds that run and creates no second one.
        """
        self.call("PATCH", f"/dags/{dag_id}", {"is_paused": True})
        due = self.get(f"/dags/{dag_id}/details")["next_dagrun_logical_date"]
        if not due:
            raise AirflowError(f"{dag_id} has no due run: it has no schedule, or the dag-processor has not set it")
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": due, "conf": dict(conf)})
        self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        return run

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float, *, fail_fast: bool = False) -> dict[str, Any]:
        """Poll a run until it is no longer queued or running (or the deadline passes); the run.

        ``fail_fast``: also return as soon as a task failed or waits for a retry (a test need not sit
        through the retry delay to know the run went wrong).
        """
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.get(f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")
            if run["state"] not in ("queued", "running"):
                return run
            if fail_fast and any(t["state"] in ("failed", "up_for_retry")
                                 for t in self.task_instances(dag_id, run_id)):
                return run
            time.sleep(2)
        return run

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        rid = urllib.parse.quote(run_id, safe="")
        return self.get(f"/dags/{dag_id}/dagRuns/{rid}/taskInstances", limit=100)["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[str]:
        """The messages of a task's log, one string per logged event (a table stays in one event)."""
        rid = urllib.parse.quote(run_id, safe="")
        res = self.get(f"/dags/{dag_id}/dagRuns/{rid}/taskInstances/{task_id}/logs/{try_number}",
                       full_content="true")
        content = res.get("content") or []
        if isinstance(content, str):
            return content.splitlines()
        return [_log_message(e) for e in content]


def _log_message(entry: Any) -> str:
    """One structured log entry as text; an exception's type and message follow the event."""
    if not isinstance(entry, dict):
        return str(entry)
    text = str(entry.get("event", ""))
    for exc in entry.get("error_detail") or []:
        if isinstance(exc, dict):
            text += f"\n{exc.get('exc_type', '')}: {exc.get('exc_value', '')}"
    return text

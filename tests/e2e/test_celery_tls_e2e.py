"""The production topology on the distributed engine: CeleryExecutor, two workers, a TLS-only target.

Airflow runs as in a deployment with remote workers (scripts/airflowstack.py in Celery mode,
scripts/celerystack.py): api-server, scheduler, dag-processor and triggerer with a PostgreSQL metadata
database in the session's test cluster; Redis (Debian's ``redis-server``) on a free loopback port as the
broker, Celery's results in the metadata database; two Celery workers, each with a disk of its own for
HOME, TMPDIR, ``QUANT_BACKUP_DIR`` and AIRFLOW_HOME (as root: seen by each at the same path, in a mount
namespace of its own, as on two machines), and its own name (``worker1``, ``worker2``), recorded on the
task instances it runs. The workers share nothing with the rest or with each other but the metadata
database, the DAGs folder and plugins, the target PostgreSQL, the S3 endpoint (moto) and the shared data
directory holding the source SQLite file (read-only, like the DAGs folder; it could come from S3 later).
Task logs go to S3 and the api-server reads them there.

The target PostgreSQL accepts TCP only over TLS (``hostssl``; the session's CA and server certificate,
made with openssl) and ``quant_postgres`` connects with ``sslmode=verify-full`` and that CA.

Through the REST API the module runs the migration (its table tasks spread over both workers), the
nightly backup (the object in the bucket, no dump left on any worker's disk) and a restore of ``latest``
into a new database, compared with the source table by table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from airflowstack import AirflowApi, AirflowStack, postgres_metadata_uri
from celerystack import CeleryMode, CeleryWorker, private_mounts_missing, redis_server_missing
from pgcluster import Cluster, free_port
from quantdbops import CONN_POSTGRES, CONN_S3, CONN_SQLITE
from quantdbops.backup.naming import DUMP_SUFFIX, LATEST_NAME
from quantdbops.registry import migratable_tables
from support.e2e import generate_sample, outcome, run_to_end, trigger_to_end

_NO_REDIS = redis_server_missing()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_NO_REDIS is not None, reason=_NO_REDIS or "")]

MIGRATE, BACKUP, RESTORE = "migrate_sqlite_to_postgres", "postgres_backup_nightly", "postgres_restore"
# 10 tickers x 120 days in each of the 6 regions: small and quick; every table task runs whatever the size.
SAMPLE_ARGS = ["--tickers-per-region", "10", "--days", "120"]
WORKERS = 2
RUN_DEADLINE_S = 420  # each run takes well under a minute here; the deadline only bounds a hung scheduler
# Skipped by design: pruning is off by default; a restore into a new database has nothing to safety-dump.
SKIPPED = {MIGRATE: {"prune_tickers"}, BACKUP: set(), RESTORE: {"safety_backup"}}
# The backup journal gains the restore's own rows after the dump's snapshot (as in the integration tests).
NOT_COMPARED = ("ops.backups",)


@dataclass
class Deployment:
    stack: AirflowStack
    api: AirflowApi
    target: Cluster
    dbname: str  # the migrated (and backed-up) database on the TLS-only cluster
    bucket: str  # the backups' bucket
    s3_endpoint: str

    @property
    def workers(self) -> list[CeleryWorker]:
        assert self.stack.celery
        return self.stack.celery.worker_list

    @property
    def quiet_logs(self) -> tuple[str, ...]:
        """What to read when a run never got going: the scheduler's log and the workers'."""
        return ("scheduler", *(f"celery-{w.name}" for w in self.workers))

    def finish(self, dag_id: str, created: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return run_to_end(self.api, self.stack, dag_id, created, RUN_DEADLINE_S, self.quiet_logs)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return trigger_to_end(self.api, self.stack, dag_id, conf, RUN_DEADLINE_S, self.quiet_logs)


@dataclass
class Run:
    run: dict[str, Any]
    task_instances: list[dict[str, Any]]


def _show(title: str, tis: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    """One line per task with the worker that ran it, in the test log (not captured)."""
    with capsys.disabled():
        print(f"\n{title}")
        for ti in sorted(tis, key=lambda t: (t.get("start_date") or "", t["task_id"])):
            print(f"  {ti['task_id']:<34} {ti['state']:<10} on {ti.get('hostname') or '-'}")


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data directory every worker reads (like the DAGs folder): the source SQLite file lives here."""
    return generate_sample(tmp_path_factory.mktemp("shared-data") / "spock_local.db", SAMPLE_ARGS)


@pytest.fixture(scope="module")
def deployment(plain_cluster: Cluster, tls_cluster: Cluster, s3_endpoint: str, shared_data: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Airflow with the CeleryExecutor and two workers, the pool and three connections made over the API."""
    from support.backup import new_bucket

    assert tls_cluster.tls
    suffix = uuid.uuid4().hex[:8]
    meta_db, target_db = f"celery_airflow_{suffix}", f"celery_quant_{suffix}"
    bucket, log_bucket = new_bucket(s3_endpoint, f"backups-{suffix}"), new_bucket(s3_endpoint, f"logs-{suffix}")
    plain_cluster.createdb(meta_db)
    tls_cluster.createdb(target_db)
    root = tmp_path_factory.mktemp("airflow-celery")
    celery = CeleryMode(root / "celery", remote_log_folder=f"s3://{log_bucket}/task-logs",
                        remote_log_conn_id=CONN_S3, workers=WORKERS, concurrency=2)
    stack = AirflowStack(root / "home", postgres_metadata_uri("127.0.0.1", plain_cluster.port, meta_db),
                         free_port(), celery=celery)
    try:
        api = stack.up()
        api.set_connection(CONN_POSTGRES, {
            "conn_type": "postgres", "host": "127.0.0.1", "port": tls_cluster.port, "login": "postgres",
            "schema": target_db, "extra": {"sslmode": "verify-full", "sslrootcert": str(tls_cluster.tls.ca_cert)}})
        api.set_connection(CONN_SQLITE, {"conn_type": "sqlite", "host": str(shared_data)})
        api.set_connection(CONN_S3, {"conn_type": "aws", "login": "testing", "password": "testing",
                                     "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}})
        api.wait_for_dags([MIGRATE, BACKUP, RESTORE])
        yield Deployment(stack, api, tls_cluster, target_db, bucket, s3_endpoint)
    finally:
        stack.stop()
        with psycopg.connect(plain_cluster.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{meta_db}" WITH (FORCE)')
        with psycopg.connect(tls_cluster.dsn("postgres"), autocommit=True) as conn:
            for (db,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                      (f"%{suffix}%",)).fetchall():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@pytest.fixture(scope="module")
def migration(deployment: Deployment) -> Run:
    """The whole migration of the shared sample into the TLS-only target, awaited to its end."""
    return Run(*deployment.trigger(MIGRATE, {"dry_run": False}))


@pytest.fixture(scope="module")
def backup(deployment: Deployment, migration: Run) -> Run:
    """Tonight's backup of the migrated database, run now by hand into the test's bucket; each worker uses its
    own QUANT_BACKUP_DIR (no local_dir param)."""
    created = deployment.api.trigger_due_run(BACKUP, {"bucket": deployment.bucket})
    return Run(*deployment.finish(BACKUP, created))


@pytest.fixture(scope="module")
def restore(deployment: Deployment, backup: Run) -> tuple[Run, str]:
    """``latest`` restored into a new database; the run and that database's name."""
    target = f"{deployment.dbname}_restored"
    conf = {"backup": "latest", "target_database": target, "bucket": deployment.bucket}
    return Run(*deployment.trigger(RESTORE, conf)), target


# --- the TLS-only target -----------------------------------------------------------------------------------
def test_the_target_refuses_a_connection_without_tls(tls_cluster: Cluster) -> None:
    plain = f"host=127.0.0.1 port={tls_cluster.port} user=postgres dbname=postgres sslmode=disable"
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry .* no encryption"):
        psycopg.connect(plain, connect_timeout=10).close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_target_proves_its_name_to_a_verify_full_client(tls_cluster: Cluster, host: str) -> None:
    assert tls_cluster.tls
    dsn = (f"host={host} port={tls_cluster.port} user=postgres dbname=postgres sslmode=verify-full "
           f"sslrootcert={tls_cluster.tls.ca_cert}")
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)


# --- the deployment ----------------------------------------------------------------------------------------
def test_both_workers_answer_the_broker(deployment: Deployment) -> None:
    assert deployment.stack.celery
    assert deployment.stack.celery.answering_workers() == {w.node_name for w in deployment.workers}


def test_each_worker_sees_only_its_own_disk(deployment: Deployment) -> None:
    """At the path their tasks write to, the two workers see two different disks (as two machines would)."""
    if reason := private_mounts_missing():
        pytest.skip(reason)
    seen = {}
    for w in deployment.workers:
        assert w.private
        through_its_eyes = Path(f"/proc/{deployment.stack.procs[f'celery-{w.name}'].pid}/root{w.view}")
        seen[w.name] = through_its_eyes.stat().st_ino
        assert through_its_eyes.samefile(w.disk), f"{w.name} does not see its own disk at {w.view}"
    assert len(set(seen.values())) == len(seen), seen


# --- the migration -----------------------------------------------------------------------------------------
def test_the_migration_succeeds_with_every_task(deployment: Deployment, migration: Run) -> None:
    dag_tasks = {t["task_id"] for t in deployment.api.get(f"/dags/{MIGRATE}/tasks")["tasks"]}
    states = outcome(migration.task_instances, SKIPPED[MIGRATE])
    assert set(states) == dag_tasks
    assert set(states.values()) == {"success"}, states


def test_the_table_tasks_ran_on_both_workers(deployment: Deployment, migration: Run,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _show(f"{MIGRATE}: task -> worker", migration.task_instances, capsys)
    names = {w.name for w in deployment.workers}
    by_task = {t["task_id"]: t["hostname"] for t in migration.task_instances}
    assert set(by_task.values()) <= names, f"tasks ran outside the two workers: {by_task}"
    loads = {by_task[f"load_{t.name}"] for t in migratable_tables()}
    assert loads == names, f"the table tasks did not spread over both workers: {by_task}"


# --- the nightly backup and the restore drill ----------------------------------------------------------------
# Written as they must pass once no backup or restore task hands a local file to another. Until then they
# fail for that reason only: `dump` leaves the dump in the worker's QUANT_BACKUP_DIR for `upload` and
# `verify` (and `fetch` leaves one for `restore`), so the run stops at `upload` ("local dump ... is gone") or
# `verify` (FileNotFoundError on the manifest) whenever one lands on another worker than `dump`, and when
# all share one the dump stays on its disk.
def test_the_nightly_backup_succeeds(backup: Run, capsys: pytest.CaptureFixture[str]) -> None:
    _show(f"{BACKUP}: task -> worker", backup.task_instances, capsys)
    assert set(outcome(backup.task_instances, SKIPPED[BACKUP]).values()) == {"success"}


def test_the_backup_and_latest_are_in_the_bucket_encrypted(deployment: Deployment, backup: Run) -> None:
    from support.backup import get_json, keys, s3_client

    prefix = f"backups/{deployment.dbname}/"
    stored = keys(deployment.s3_endpoint, deployment.bucket, prefix)
    dumps = [k for k in stored if k.endswith(DUMP_SUFFIX)]
    assert len(dumps) == 1, stored
    assert prefix + LATEST_NAME in stored
    assert get_json(deployment.s3_endpoint, deployment.bucket, prefix + LATEST_NAME)["s3_key"] == dumps[0]
    # encrypted at rest (the default), as the manifest records, and proven by a restore
    head = s3_client(deployment.s3_endpoint).head_object(Bucket=deployment.bucket, Key=dumps[0])
    manifest = get_json(deployment.s3_endpoint, deployment.bucket, dumps[0].replace(DUMP_SUFFIX, ".manifest.json"))
    assert head["ServerSideEncryption"] == manifest["encryption"]["algorithm"] == "AES256"
    assert manifest["verified"] is True


def test_no_dump_is_left_on_any_worker(deployment: Deployment, backup: Run) -> None:
    left = {w.name: dumps_under(w) for w in deployment.workers}
    assert left == {w.name: [] for w in deployment.workers}


def test_the_restore_of_latest_succeeds(restore: tuple[Run, str], capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = restore
    _show(f"{RESTORE}: task -> worker", run.task_instances, capsys)
    assert set(outcome(run.task_instances, SKIPPED[RESTORE]).values()) == {"success"}


def test_the_restored_database_equals_the_source(deployment: Deployment, restore: tuple[Run, str]) -> None:
    from support.backup import fingerprints

    _, target = restore
    source = fingerprints(deployment.target.dsn(deployment.dbname), skip=NOT_COMPARED)
    restored = fingerprints(deployment.target.dsn(target), skip=NOT_COMPARED)
    assert restored.keys() == source.keys()
    assert {t: fp for t, fp in restored.items() if fp != source[t]} == {}, "tables whose rows differ"


# --- helpers ----------------------------------------------------------------------------------------------
def dumps_under(worker: CeleryWorker) -> list[str]:
    """Dump files (finished or partial) anywhere on a worker's own disk: temp dir, backup dir, home."""
    return sorted(str(p.relative_to(worker.disk)) for p in worker.disk.rglob("*")
                  if p.is_file() and p.name.endswith((DUMP_SUFFIX, f"{DUMP_SUFFIX}.partial")))


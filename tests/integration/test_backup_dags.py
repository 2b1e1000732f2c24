"""Both DAGs end to end through ``dag.test()``: real Airflow, real PostgreSQL, moto's real S3 server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from quantdbops.backup.databases import drop_database
from quantdbops.io.pg import connect
from support.backup import (
    conn_kwargs,
    fingerprints,
    keys,
    load_dag,
    load_sample,
    new_bucket,
    s3_client,
    task_states,
)

pytestmark = pytest.mark.slow


def _xcom(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.sdk.serde import deserialize  # our results come back as their classes
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id,
                                                  task_ids=[task_id], key="return_value")).all()
        return deserialize(XComModel.deserialize_value(rows[0])) if rows else None


@pytest.fixture
def setup(airflow_db: Path, airflow_connections: dict[str, str], sample_file: Path, s3_endpoint: str,
          tmp_path: Path) -> dict[str, Any]:
    dsn = airflow_connections["pg_dsn"]
    load_sample(sample_file, dsn)
    bucket = new_bucket(s3_endpoint, f"dag-{uuid.uuid4().hex[:10]}")
    return {"kw": conn_kwargs(dsn), "bucket": bucket, "local_dir": str(tmp_path / "backups"),
            "endpoint": s3_endpoint}


def test_nightly_backup_then_restore_into_a_fresh_database(setup: dict[str, Any]) -> None:
    kw, bucket = setup["kw"], setup["bucket"]
    before = fingerprints(kw, skip=("ops.backups",))
    dr = load_dag("postgres_backup_nightly").test(run_conf={"bucket": bucket, "local_dir": setup["local_dir"]})
    states = task_states(dr)
    assert dr.state == "success", states
    assert set(states.values()) == {"success"}, states
    report = _xcom(dr, "report")
    assert report.verified is True and report.size_bytes > 0
    stored = keys(setup["endpoint"], bucket)
    assert report.s3_key in stored and report.s3_key.replace(".dump", ".manifest.json") in stored
    with connect(kw, autocommit=True) as c:
        rows = c.execute("SELECT status, sha256, verified FROM ops.backups WHERE run_id = %s", (dr.run_id,)).fetchall()
    assert rows == [("verified", report.sha256, True)]

    target = f"restored_{uuid.uuid4().hex[:8]}"
    try:
        rr = load_dag("postgres_restore").test(run_conf={
            "backup": "latest", "target_database": target, "bucket": bucket, "local_dir": setup["local_dir"]})
        states = task_states(rr)
        assert rr.state == "success", states
        assert states["safety_backup"] == "skipped"  # a new database: nothing to save
        assert fingerprints({**kw, "dbname": target}, skip=("ops.backups",)) == before

        # The bad day: the target exists and was damaged; restore a dated key over it, confirmed.
        with connect({**kw, "dbname": target}, autocommit=True) as c:
            c.execute("DELETE FROM public.technical_analysis")
        damaged = fingerprints({**kw, "dbname": target})
        rr = load_dag("postgres_restore").test(run_conf={
            "backup": report.s3_key, "target_database": target, "confirm_target": target, "bucket": bucket,
            "local_dir": setup["local_dir"]})
        states = task_states(rr)
        assert rr.state == "success", states
        assert set(states.values()) == {"success"}, states
        assert fingerprints({**kw, "dbname": target}, skip=("ops.backups",)) == before
        safety = _xcom(rr, "safety_backup")
        assert safety.s3_key.startswith(f"backups/{target}/safety/")
        assert safety.s3_key in keys(setup["endpoint"], bucket)
        # The safety dump (in the bucket only: no worker kept a copy) holds the damaged state: restore it, look.
        assert safety.local_copy is None
        from quantdbops.backup.databases import create_database
        from quantdbops.backup.dump import run_pg_restore

        check = f"safety_{uuid.uuid4().hex[:8]}"
        create_database(kw, check)
        dump = Path(setup["local_dir"]).parent / "safety.dump"
        dump.write_bytes(s3_client(setup["endpoint"]).get_object(Bucket=bucket, Key=safety.s3_key)["Body"].read())
        try:
            run_pg_restore(kw, check, dump)
            assert fingerprints({**kw, "dbname": check}) == damaged
        finally:
            drop_database(kw, check)
    finally:
        drop_database(kw, target)


def test_dry_run_writes_nothing(setup: dict[str, Any]) -> None:
    """No bucket param: the task falls back to the Variable quant_backup_bucket, unset, so quant-db-backups."""
    from quantdbops.backup.naming import DEFAULT_BUCKET

    kw = setup["kw"]
    bucket = new_bucket(setup["endpoint"], DEFAULT_BUCKET)
    dr = load_dag("postgres_backup_nightly").test(run_conf={"local_dir": setup["local_dir"], "dry_run": True})
    states = task_states(dr)
    assert dr.state == "success", states
    assert {states[t] for t in ("dump", "verify")} == {"skipped"}
    assert {states[t] for t in ("preflight", "retention", "report")} == {"success"}
    assert keys(setup["endpoint"], bucket, prefix=f"backups/{kw['dbname']}/") == []
    assert _xcom(dr, "preflight").bucket == DEFAULT_BUCKET
    assert not Path(setup["local_dir"]).exists()
    with connect(kw, autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM ops.backups").fetchone()[0] == 0


def test_restore_dag_refuses_a_corrupted_object_and_leaves_the_target_alone(setup: dict[str, Any]) -> None:
    from quantdbops.backup import nightly_steps, store
    from quantdbops.backup.settings import BackupSettings

    kw, bucket = setup["kw"], setup["bucket"]
    s = BackupSettings(bucket=bucket, local_dir=Path(setup["local_dir"]), verify=False)
    from datetime import datetime

    hook = store.make_hook()
    p = nightly_steps.preflight(kw, hook, s, datetime.now().astimezone())
    u = nightly_steps.dump(kw, hook, p, s, run_id="seed")
    client = s3_client(setup["endpoint"])
    client.put_object(Bucket=bucket, Key=u.s3_key, Body=b"\x00" * u.size_bytes)

    target = str(kw["dbname"])  # the live database, confirmed: only the checksum stands in the way
    before = fingerprints(kw)
    rr = load_dag("postgres_restore").test(run_conf={
        "backup": u.s3_key, "target_database": target, "confirm_target": target, "bucket": bucket,
        "local_dir": setup["local_dir"]})
    states = task_states(rr)
    assert rr.state == "failed"
    assert states["resolve"] == "success" and states["fetch"] == "failed"
    assert states["restore"] != "success" and states["safety_backup"] != "success"
    assert fingerprints(kw) == before


def test_a_misspelled_database_fails_the_backup_on_its_first_try(airflow_db: Path, airflow_connections: dict[str, str],
                                                                s3_endpoint: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """No retry can create a database: preflight fails at once (before: 3 tries over ~9 minutes)."""
    import json

    kw = conn_kwargs(airflow_connections["pg_dsn"])
    monkeypatch.setenv("AIRFLOW_CONN_QUANT_POSTGRES", json.dumps({
        "conn_type": "postgres", "host": kw["host"], "port": int(kw["port"]), "login": kw["user"],
        "schema": "quant_platfrom"}))
    bucket = new_bucket(s3_endpoint, f"dag-{uuid.uuid4().hex[:10]}")
    dr = load_dag("postgres_backup_nightly").test(run_conf={"bucket": bucket, "local_dir": str(tmp_path / "b")})
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert dr.state == "failed"
    assert (tis["preflight"].state, tis["preflight"].try_number) == ("failed", 1)
    assert tis["preflight"].max_tries > 0  # it had retries left: none were used
    assert {tis[t].state for t in ("dump", "verify")} == {"upstream_failed"}
    assert keys(s3_endpoint, bucket) == []

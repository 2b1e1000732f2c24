"""The nightly backup's steps on a real PostgreSQL 15 (both modes) and moto's real S3 server.

The steps are called exactly as the DAG's operators call them (``quantdbops.backup.nightly_steps``), with the
quant_s3 connection read through Airflow from ``AIRFLOW_CONN_QUANT_S3``. Faults are real: a closed loopback
port for "S3 unreachable", a TCP proxy that cuts the connection mid-request for "failing mid-upload". The
dump streams into the bucket: no step leaves a file on the worker's disk, which the tests check.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from quantdbops.backup import nightly_steps, restore_steps, store, stream
from quantdbops.backup.naming import TZ, BackupName, latest_key
from quantdbops.backup.settings import BackupSettings
from quantdbops.backup.store import BackupStoreError, RetryPolicy
from quantdbops.errors import ActionableFailure
from quantdbops.io.pg import connect
from support.backup import (
    conn_kwargs,
    fingerprints,
    get_json,
    keys,
    load_sample,
    new_bucket,
    s3_client,
    set_s3_endpoint,
)
from support.harness import MODES

FAST_RETRY = RetryPolicy(attempts=3, first_delay_s=0.05, max_delay_s=0.2)
WHEN = datetime(2025, 10, 17, 2, 0, tzinfo=TZ)


@pytest.fixture
def loaded(pg_dsn: str, sample_file: Path, airflow_connections: dict[str, str]) -> dict[str, object]:
    """The test's database with the schema and a small sample loaded; libpq kwargs of it."""
    load_sample(sample_file, pg_dsn)
    return conn_kwargs(pg_dsn)


@pytest.fixture
def settings(s3_endpoint: str, tmp_path: Path) -> BackupSettings:
    bucket = new_bucket(s3_endpoint, f"bk-{uuid.uuid4().hex[:10]}")
    work = tmp_path / "work"
    work.mkdir()
    return BackupSettings(bucket=bucket, local_dir=tmp_path / "backups", retry=FAST_RETRY, work_dir=work)


def _backup(kw: dict[str, object], s: BackupSettings, when: datetime = WHEN, *, verify: bool = True) -> Any:
    """The backup in the bucket (``UploadedBackup``), verified first unless ``verify`` is false."""
    from dataclasses import replace

    s = replace(s, verify=verify)
    hook = store.make_hook(s.aws_conn_id)
    p = nightly_steps.preflight(kw, hook, s, when)
    d = nightly_steps.dump(kw, hook, p, s, run_id=f"test-{when:%H%M%S}")
    if verify:
        assert nightly_steps.verify(kw, hook, d, s).verified
    return d


def _files(*dirs: Path) -> list[Path]:
    """Every file left under the worker's directories."""
    return sorted(p for d in dirs if d.exists() for p in d.rglob("*") if p.is_file())


def _put_manifest(s: BackupSettings, key: str, manifest: dict[str, Any]) -> None:
    store.put_json(store.make_hook(), s.bucket, key, manifest, FAST_RETRY)


def _journal(kw: dict[str, object]) -> list[tuple]:
    with connect(kw, autocommit=True) as c:
        return c.execute("SELECT status, s3_key, sha256, size_bytes, verified, error FROM ops.backups "
                         "ORDER BY id").fetchall()


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_restores_every_table_equal(mode: str, loaded: dict[str, object], settings: BackupSettings,
                                               s3_endpoint: str) -> None:
    before = fingerprints(loaded, skip=("ops.backups",))  # the journal itself changes after the snapshot
    v = _backup(loaded, settings)

    bucket = settings.bucket
    assert keys(s3_endpoint, bucket) == sorted([v.s3_key, v.manifest_key, v.latest_key])
    manifest = get_json(s3_endpoint, bucket, v.manifest_key)
    assert manifest["verified"] is True and manifest["sha256"] == v.sha256
    with connect(loaded, autocommit=True) as c:
        tsdb = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    assert manifest["tsdb_version"] == (tsdb[0] if mode == "timescaledb" else None)
    assert (mode == "timescaledb") == bool(manifest["hypertables"])
    assert get_json(s3_endpoint, bucket, v.latest_key)["s3_key"] == v.s3_key
    assert _journal(loaded) == [("verified", v.s3_key, v.sha256, v.size_bytes, True, None)]
    # Encrypted at rest, as the manifest records; nothing of the dump on the worker's disk.
    for key in (v.s3_key, v.manifest_key, v.latest_key):
        assert s3_client(s3_endpoint).head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"
    assert manifest["encryption"]["algorithm"] == "AES256"
    assert _files(settings.local_dir, Path(settings.work_dir)) == []

    target = f"rt_{uuid.uuid4().hex[:10]}"
    hook = store.make_hook()
    resolved = restore_steps.resolve(hook, settings, "latest", str(loaded["dbname"]))
    assert restore_steps.check(hook, settings, resolved).sha256 == v.sha256
    try:
        result = restore_steps.restore(loaded, hook, settings, target, resolved)
        assert result.ok, result.problems
        after = fingerprints({**loaded, "dbname": target}, skip=("ops.backups",))
        assert after == before
        assert sum(n for n, _ in after.values()) > 1000  # the sample really was there
        if mode == "timescaledb":
            with connect({**loaded, "dbname": target}, autocommit=True) as c:
                hyper = {r[0] for r in c.execute(
                    "SELECT hypertable_schema || '.' || hypertable_name FROM timescaledb_information.hypertables")}
                restoring = c.execute("SELECT current_setting('timescaledb.restoring')").fetchone()[0]
            assert hyper == set(manifest["hypertables"])
            assert restoring == "off"  # timescaledb_post_restore() ran
    finally:
        from quantdbops.backup.databases import drop_database

        drop_database(loaded, target)


def test_s3_unreachable_fails_after_retries_and_leaves_nothing(loaded: dict[str, object], settings: BackupSettings,
                                                               s3_endpoint: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    hook = store.make_hook()
    p = nightly_steps.preflight(loaded, hook, settings, WHEN)
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    set_s3_endpoint(monkeypatch, f"http://127.0.0.1:{closed}")
    warnings: list[str] = []
    with pytest.raises(BackupStoreError, match=r"failed after 3 attempts"):
        nightly_steps.dump(loaded, store.make_hook(connect_timeout=1), p, settings, run_id="unreachable",
                     say=lambda msg, *a: warnings.append(msg % a))
    assert len([w for w in warnings if "retrying" in w]) == 2  # two back-offs between three attempts
    assert keys(s3_endpoint, settings.bucket) == []
    assert _files(settings.local_dir, Path(settings.work_dir)) == []  # and nothing on disk to be left behind
    status, _, _, _, verified, error = _journal(loaded)[0]
    assert (status, verified) == ("failed", False) and error.startswith("dump:")

    # S3 is back: the retried task dumps again and completes.
    set_s3_endpoint(monkeypatch, s3_endpoint)
    d = nightly_steps.dump(loaded, store.make_hook(), p, settings, run_id="unreachable")
    assert keys(s3_endpoint, settings.bucket) == sorted([d.s3_key, d.manifest_key])  # latest: after verify


class CuttingProxy:
    """A loopback TCP proxy to moto that cuts the first ``cuts`` connections that carry more than ``limit``
    request bytes (a small request passes; a part of the dump does not)."""

    def __init__(self, upstream: str, limit: int, cuts: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.limit, self.cuts_left = limit, cuts
        self.cut = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            up = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, up, self.limit), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, client, None), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if limit is not None and sent + len(data) > limit and self.cuts_left > 0:
                    self.cuts_left -= 1
                    dst.sendall(data[: limit - sent])
                    self.cut += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.server.close()


def _multipart_uploads(endpoint: str, bucket: str) -> list[str]:
    return [u["Key"] for u in s3_client(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_a_connection_cut_mid_upload_leaves_no_object_no_manifest_and_no_latest(
        loaded: dict[str, object], settings: BackupSettings, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    s = replace(settings, part_size=5 * store.MB)
    hook = store.make_hook()
    p = nightly_steps.preflight(loaded, hook, s, WHEN)
    # every connection dies once it carried 4 kB: the upload is created, each attempt at a part is cut
    proxy = CuttingProxy(s3_endpoint, limit=4096, cuts=1000)
    set_s3_endpoint(monkeypatch, proxy.url)
    try:
        with pytest.raises(BackupStoreError, match=r"part 1 of .* failed after 3 attempts"):
            nightly_steps.dump(loaded, store.make_hook(read_timeout=5), p, s, run_id="cut")
    finally:
        proxy.close()
    assert proxy.cut >= 3  # every attempt really was cut mid-body
    assert keys(s3_endpoint, s.bucket) == []  # no partial dump, no manifest, no latest
    assert _multipart_uploads(s3_endpoint, s.bucket) == []  # the upload was aborted, not left open
    assert _journal(loaded)[0][0] == "failed"


def test_one_cut_connection_is_retried_and_the_upload_completes(
        loaded: dict[str, object], settings: BackupSettings, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = store.make_hook()
    p = nightly_steps.preflight(loaded, hook, settings, WHEN)
    proxy = CuttingProxy(s3_endpoint, limit=4096, cuts=1)  # the first connection dies in a part
    set_s3_endpoint(monkeypatch, proxy.url)
    try:
        d = nightly_steps.dump(loaded, store.make_hook(read_timeout=5), p, settings, run_id="cut-once")
    finally:
        proxy.close()
    assert proxy.cut == 1
    body = s3_client(s3_endpoint).get_object(Bucket=settings.bucket, Key=d.s3_key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == d.sha256 and len(body) == d.size_bytes
    assert get_json(s3_endpoint, settings.bucket, d.manifest_key)["sha256"] == d.sha256
    set_s3_endpoint(monkeypatch, s3_endpoint)
    nightly_steps.verify(loaded, store.make_hook(), d, settings)  # and it restores equal to its manifest


def test_a_stream_goes_multipart_with_bounded_parts_and_is_read_back(
        airflow_connections: dict[str, str], settings: BackupSettings, s3_endpoint: str) -> None:
    """11 MB through 5 MB parts: 3 parts, the object's bytes and SHA-256 those of the stream, encrypted."""
    import io
    import os

    data = os.urandom(11 * store.MB)
    source = io.BytesIO(data)
    sent, _ = stream.upload_stream(store.make_hook(), settings.bucket, "backups/x/big.dump", source.read,
                                   encryption=stream.Encryption("AES256"), part_size=5 * store.MB, policy=FAST_RETRY)
    assert (sent.parts, sent.size_bytes, sent.sha256) == (3, len(data), hashlib.sha256(data).hexdigest())
    assert sent.etag.strip('"').endswith("-3")  # 5 + 5 + 1 MB parts
    body = s3_client(s3_endpoint).get_object(Bucket=settings.bucket, Key="backups/x/big.dump")["Body"].read()
    assert body == data
    with pytest.raises(stream.ObjectMismatch, match="sha256"):  # and the read-back really compares content
        stream.download(store.make_hook(), settings.bucket, "backups/x/big.dump", None, expect_size=len(data),
                        expect_sha256="0" * 64, policy=FAST_RETRY)


def test_a_writer_that_fails_leaves_no_object(airflow_connections: dict[str, str], settings: BackupSettings,
                                              s3_endpoint: str) -> None:
    """pg_dump's exit status is read before the upload completes: a failed dump never becomes an object."""
    import io

    def failed() -> None:
        raise RuntimeError("pg_dump exited with 1: connection to server lost")

    with pytest.raises(RuntimeError, match="connection to server lost"):
        stream.upload_stream(store.make_hook(), settings.bucket, "backups/x/half.dump", io.BytesIO(b"x" * 1000).read,
                             encryption=stream.Encryption(), finish=failed, policy=FAST_RETRY)
    assert keys(s3_endpoint, settings.bucket) == [] and _multipart_uploads(s3_endpoint, settings.bucket) == []


@pytest.mark.parametrize("encryption", [
    pytest.param(stream.Encryption("aws:kms", "arn:aws:kms:us-east-1:123456789012:key/quant-backups"), id="kms"),
    pytest.param(stream.Encryption(None), id="bucket-default"),
])
def test_encryption_is_asked_for_and_recorded(loaded: dict[str, object], settings: BackupSettings,
                                              s3_endpoint: str, encryption: stream.Encryption) -> None:
    from dataclasses import replace

    d = _backup(loaded, replace(settings, encryption=encryption), verify=False)
    head = s3_client(s3_endpoint).head_object(Bucket=settings.bucket, Key=d.s3_key)
    manifest = get_json(s3_endpoint, settings.bucket, d.manifest_key)
    assert head.get("ServerSideEncryption") == encryption.algorithm == manifest["encryption"]["algorithm"]
    if encryption.kms_key_id:
        assert head["SSEKMSKeyId"].endswith("key/quant-backups")


def test_a_local_copy_is_kept_only_when_asked_and_equals_the_object(
        loaded: dict[str, object], settings: BackupSettings, s3_endpoint: str) -> None:
    from dataclasses import replace

    d = _backup(loaded, replace(settings, keep_local_copy=True), verify=False)
    body = s3_client(s3_endpoint).get_object(Bucket=settings.bucket, Key=d.s3_key)["Body"].read()
    assert _files(settings.local_dir) == [Path(d.local_copy)]
    assert Path(d.local_copy).read_bytes() == body


def test_a_corrupted_object_is_refused_before_the_target_is_touched(
        loaded: dict[str, object], settings: BackupSettings, s3_endpoint: str) -> None:
    v = _backup(loaded, settings, verify=False)
    client = s3_client(s3_endpoint)
    data = bytearray(client.get_object(Bucket=settings.bucket, Key=v.s3_key)["Body"].read())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    client.put_object(Bucket=settings.bucket, Key=v.s3_key, Body=bytes(data))

    # The target exists and holds data: after the refusal it must be exactly as it was.
    target = str(loaded["dbname"])
    before = fingerprints(loaded)
    hook = store.make_hook()
    resolved = restore_steps.resolve(hook, settings, v.s3_key, target)
    assert restore_steps.check_target(loaded, target, target) is True
    with pytest.raises(restore_steps.RestoreRefused, match="checksum mismatch"):
        restore_steps.check(hook, settings, resolved)
    with pytest.raises(restore_steps.RestoreRefused, match="checksum mismatch"):  # the restore proves it again itself
        restore_steps.restore(loaded, hook, settings, target, resolved)
    assert fingerprints(loaded) == before
    assert _files(Path(settings.work_dir)) == []


def test_an_existing_target_needs_its_name_repeated(loaded: dict[str, object]) -> None:
    target = str(loaded["dbname"])
    with pytest.raises(restore_steps.RestoreRefused, match="confirm_target"):
        restore_steps.check_target(loaded, target, "")
    with pytest.raises(restore_steps.RestoreRefused, match="confirm_target"):
        restore_steps.check_target(loaded, target, target.upper())
    assert restore_steps.check_target(loaded, f"new_{uuid.uuid4().hex[:8]}", "") is False


def test_preflight_refuses_a_missing_bucket_and_too_little_disk(loaded: dict[str, object],
                                                                settings: BackupSettings) -> None:
    from dataclasses import replace

    hook = store.make_hook()
    with pytest.raises(ActionableFailure, match="does not exist"):
        nightly_steps.preflight(loaded, hook, replace(settings, bucket=f"missing-{uuid.uuid4().hex[:8]}"), WHEN)
    with pytest.raises(nightly_steps.DiskShortage, match="free on this worker"):
        nightly_steps.preflight(loaded, hook, replace(settings, disk_headroom=1e9), WHEN)


# --- retention ---------------------------------------------------------------------------------------------
# (days old, verified, expected) with K = 2 verified protected and N = 30 days. Reasoning per row:
SEEDED = [
    (1, False, "keep"),     # young
    (20, True, "keep"),     # young (and newest verified #1)
    (29, False, "keep"),    # young: 29 < 30
    (31, False, "delete"),  # old, unverified
    (35, True, "keep"),     # old, but newest verified #2: protected
    (40, False, "delete"),  # old, unverified
    (45, True, "delete"),   # old, verified #3: beyond the protected K = 2
    (60, True, "delete"),   # old, verified #4
]


def test_retention_deletes_exactly_the_expired_and_keeps_the_protected(
        loaded: dict[str, object], settings: BackupSettings, s3_endpoint: str) -> None:
    from dataclasses import replace
    from datetime import timedelta

    s = replace(settings, retention_days=30, keep_verified=2)
    dbname = str(loaded["dbname"])
    client = s3_client(s3_endpoint)
    now = WHEN
    names = {}
    with connect(loaded, autocommit=True) as c:
        for days, verified, expect in SEEDED:
            name = BackupName.at(dbname, now - timedelta(days=days, hours=1))
            names[name.stem] = expect
            client.put_object(Bucket=s.bucket, Key=name.dump_key(), Body=b"dump")
            client.put_object(Bucket=s.bucket, Key=name.manifest_key(), Body=f'{{"verified": {str(verified).lower()}}}')
            local = name.local_dump(s.local_dir)
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(b"dump")
            name.local_manifest(s.local_dir).write_text(f'{{"verified": {str(verified).lower()}}}')
            c.execute("INSERT INTO ops.backups (run_id, status, s3_key, verified) VALUES (%s, %s, %s, %s)",
                      ("seed", "verified" if verified else "uploaded", name.dump_key(), verified))
    client.put_object(Bucket=s.bucket, Key=latest_key(dbname), Body=b'{"name": "none"}')

    dry = nightly_steps.retention(loaded, store.make_hook(), replace(s, dry_run=True), dbname=dbname, now=now)
    assert len(keys(s3_endpoint, s.bucket)) == 2 * len(SEEDED) + 1  # dry run: nothing deleted

    r = nightly_steps.retention(loaded, store.make_hook(), s, dbname=dbname, now=now)
    expected_deleted = {stem for stem, e in names.items() if e == "delete"}
    assert set(r.deleted) == set(dry.deleted) == expected_deleted
    remaining = {BackupName.parse(k).stem for k in keys(s3_endpoint, s.bucket) if BackupName.parse(k)}
    assert remaining == set(names) - expected_deleted
    local_left = {BackupName.parse(p.name).stem for p in (Path(s.local_dir) / dbname).iterdir()}
    assert local_left == set(names) - expected_deleted
    with connect(loaded, autocommit=True) as c:
        deleted = {BackupName.parse(k).stem for (k,) in c.execute(
            "SELECT s3_key FROM ops.backups WHERE status = 'deleted' AND deleted_at IS NOT NULL")}
    assert deleted == expected_deleted


def test_a_backup_that_does_not_restore_equal_is_not_verified_and_latest_stays(
        loaded: dict[str, object], settings: BackupSettings, s3_endpoint: str) -> None:
    first = _backup(loaded, settings)
    hook = store.make_hook()
    p = nightly_steps.preflight(loaded, hook, settings, datetime(2025, 10, 18, 2, 0, tzinfo=TZ))
    d = nightly_steps.dump(loaded, hook, p, settings, run_id="second")
    m = get_json(s3_endpoint, settings.bucket, d.manifest_key)  # the manifest claims one row more
    m["row_counts"]["public.tickers"] += 1
    _put_manifest(settings, d.manifest_key, m)
    with pytest.raises(nightly_steps.VerificationError) as failed:
        nightly_steps.verify(loaded, hook, d, settings)
    cause, matched, where = str(failed.value).splitlines()
    assert where.startswith("The scratch database ") and " was dropped. 'latest' still points at " in where
    assert first.name in where and "ago): that is the backup a restore takes now" in where
    n = m["row_counts"]["public.tickers"]
    assert cause == (f"verification restore differs from the manifest: public.tickers (base table): {n - 1:,} rows "
                     f"after restore, {n:,} rows in the dump's snapshot")
    assert matched.startswith(f"every other relation matched: {len(m['relations']) - 1} of {len(m['relations'])} (")
    assert failed.value.advice.startswith("fewer rows")
    assert get_json(s3_endpoint, settings.bucket, latest_key(str(loaded["dbname"])))["s3_key"] == first.s3_key
    assert [r[0] for r in _journal(loaded)] == ["verified", "failed"]
    assert "public.tickers (base table)" in _journal(loaded)[1][5]
    with psycopg.connect(**{k: v for k, v in loaded.items() if k != "dbname"}, dbname="postgres") as c:
        assert not c.execute("SELECT 1 FROM pg_database WHERE datname LIKE %s", ("%_verify_%",)).fetchone()


def _count(kw: dict[str, object], relation: str) -> int:
    with connect(kw, autocommit=True) as c:
        return c.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*relation.split(".")))).fetchone()[0]


@pytest.mark.parametrize("mode", MODES)
def test_views_stale_at_dump_time_verify_and_move_latest(mode: str, pg_dsn: str, sample_file: Path,
                                                         airflow_connections: dict[str, str], settings: BackupSettings,
                                                         s3_endpoint: str) -> None:
    """The nightly case: views refreshed weekly are stale at dump time; the restore refreshes them."""
    load_sample(sample_file, pg_dsn, refresh_views=False)
    kw = conn_kwargs(pg_dsn)
    view, unpopulated = "public.ohlcv_daily_summary", "public.ohlcv_monthly"
    if mode == "postgresql":
        assert _count(kw, view) == 0 < _count(kw, "public.ohlcv_data")  # populated on the empty database: stale
        with connect(kw, autocommit=True) as c:
            c.execute(sql.SQL("REFRESH MATERIALIZED VIEW {} WITH NO DATA").format(
                sql.Identifier(*unpopulated.split("."))))

    v = _backup(kw, settings)

    manifest = get_json(s3_endpoint, settings.bucket, v.manifest_key)
    assert manifest["verified"] is True and manifest["manifest_version"] == 2
    assert get_json(s3_endpoint, settings.bucket, v.latest_key)["s3_key"] == v.s3_key
    kinds = manifest["relations"]
    assert kinds["public.tickers"] == {"kind": "base table"}
    assert view not in manifest["row_counts"] and "public.tickers" in manifest["row_counts"]
    if mode == "timescaledb":
        assert kinds["public.ohlcv_data"] == {"kind": "hypertable"}
        assert kinds[view] == {"kind": "continuous aggregate"}
        return
    assert kinds["public.ohlcv_data"] == {"kind": "base table"}  # the partitioned parent
    assert kinds[view] == {"kind": "materialized view", "populated": True}
    assert kinds[unpopulated] == {"kind": "materialized view", "populated": False}
    # What used to fail verification is really there: a restore of this dump refreshes the stale view.
    target = f"st_{uuid.uuid4().hex[:10]}"
    try:
        hook = store.make_hook()
        result = restore_steps.restore(kw, hook, settings, target, restore_steps.resolve(hook, settings, v.s3_key, "x"))
        assert result.ok, result.problems
        assert _count({**kw, "dbname": target}, view) > 0
        with connect({**kw, "dbname": target}, autocommit=True) as c:
            assert c.execute("SELECT relispopulated FROM pg_class WHERE oid = %s::regclass",
                             (unpopulated,)).fetchone()[0] is False
    finally:
        from quantdbops.backup.databases import drop_database

        drop_database(kw, target)


def test_a_view_populated_at_dump_time_must_be_populated_after_restore(
        pg_dsn: str, sample_file: Path, airflow_connections: dict[str, str], settings: BackupSettings,
        s3_endpoint: str) -> None:
    load_sample(sample_file, pg_dsn, refresh_views=False)
    kw = conn_kwargs(pg_dsn)
    with connect(kw, autocommit=True) as c:
        c.execute("REFRESH MATERIALIZED VIEW public.ohlcv_monthly WITH NO DATA")
    hook = store.make_hook()
    d = nightly_steps.dump(kw, hook, nightly_steps.preflight(kw, hook, settings, WHEN), settings, run_id="view")
    m = get_json(s3_endpoint, settings.bucket, d.manifest_key)  # claims the view was populated
    m["relations"]["public.ohlcv_monthly"]["populated"] = True
    _put_manifest(settings, d.manifest_key, m)
    with pytest.raises(nightly_steps.VerificationError, match=(
            r"differs from the manifest: public\.ohlcv_monthly \(materialized view\): populated at dump time, "
            r"not populated after restore\nevery other relation matched.*\nThe scratch database \S+ was dropped")):
        nightly_steps.verify(kw, hook, d, settings)

"""The backup package's plain logic: names and keys, the retention rule, manifest comparison, retries,
the client environment, streaming checksums and the trigger-form params."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from quantdbops.backup import manifest as mf
from quantdbops.backup.dump import client_target, sha256_file
from quantdbops.backup.naming import TZ, BackupName, check_db_name, latest_key, manifest_key_for
from quantdbops.backup.retention import Candidate, plan
from quantdbops.backup.store import BackupStoreError, RetryPolicy, s3_error, with_retries
from quantdbops.errors import ActionableFailure

NOW = datetime(2025, 10, 17, 2, 0, tzinfo=TZ)


def test_name_gives_the_dated_keys_of_the_issue() -> None:
    name = BackupName.at("quant_platform", NOW)
    assert name.dump_key() == "backups/quant_platform/2025/10/17/quant_platform_20251017T020000.dump"
    assert name.manifest_key() == "backups/quant_platform/2025/10/17/quant_platform_20251017T020000.manifest.json"
    assert manifest_key_for(name.dump_key()) == name.manifest_key()
    assert latest_key("quant_platform") == "backups/quant_platform/latest.json"
    assert name.local_dump("/b") == Path("/b/quant_platform/quant_platform_20251017T020000.dump")


@pytest.mark.parametrize("when", [
    pytest.param(NOW, id="seoul"),
    pytest.param(NOW.astimezone(TZ).replace(tzinfo=None), id="naive-is-seoul"),
    pytest.param(datetime(2025, 10, 16, 17, 0, tzinfo=ZoneInfo("UTC")), id="utc-same-instant"),
])
def test_names_are_in_seoul_time_and_parse_back(when: datetime) -> None:
    name = BackupName.at("quant_platform", when)
    assert name.stem == "quant_platform_20251017T020000"  # 17:00 UTC is 02:00 the next day in Seoul
    assert BackupName.parse(name.dump_key()) == name
    assert BackupName.parse(name.manifest_key()) == name


@pytest.mark.parametrize("text", ["latest.json", "backups/x/notes.txt", "Quant_20251017T020000.dump",
                                  "quant_20251017.dump"])
def test_things_that_are_not_backups_do_not_parse(text: str) -> None:
    assert BackupName.parse(text) is None


@pytest.mark.parametrize("bad", ["", "Quant", "1abc", "a-b", "a;drop", "x" * 64])
def test_bad_database_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_db_name(bad)


def _c(days: float, verified: bool) -> Candidate:
    return Candidate(f"db_{days}", NOW - timedelta(days=days), verified)


def test_retention_never_deletes_the_newest_verified_whatever_their_age() -> None:
    old_verified = [_c(100 + i, True) for i in range(5)]  # all expired, all verified
    result = plan(old_verified, now=NOW, max_age_days=30, keep_verified=3)
    assert set(result.delete) == {c.stem for c in old_verified[3:]}
    assert set(result.keep) == {c.stem for c in old_verified[:3]}


def test_retention_unverified_backups_do_not_count_towards_the_protected() -> None:
    cs = [_c(40, False), _c(41, True), _c(42, False), _c(43, True)]
    result = plan(cs, now=NOW, max_age_days=30, keep_verified=1)
    assert set(result.delete) == {"db_40", "db_42", "db_43"}


def test_retention_keeps_the_boundary_day_and_pinned_names() -> None:
    cs = [_c(30, False), _c(30.01, False), _c(90, False)]
    result = plan(cs, now=NOW, max_age_days=30, keep_verified=1, always_keep=["db_90"])
    assert result.delete == ("db_30.01",)
    assert result.keep["db_90"] == "current or latest backup"


@pytest.mark.parametrize(("age", "keep"), [pytest.param(0, 1, id="age"), pytest.param(1, 0, id="keep")])
def test_retention_refuses_nonsense_settings(age: int, keep: int) -> None:
    with pytest.raises(ValueError):
        plan([], now=NOW, max_age_days=age, keep_verified=keep)


def _manifest(**relations: mf.Relation) -> dict[str, object]:
    """A version 2 manifest of ``relations`` (name ``public.<key>``) as ``mf.build`` writes it."""
    return mf.build(name="n", dbname="d", s3_key="k", bucket="b", size_bytes=1, sha256="ab", pg_version="15.1",
                    tsdb_version=None, pg_dump_major=15,
                    relations={f"public.{k}": r for k, r in relations.items()},
                    hypertable_names=[f"public.{k}" for k, r in relations.items() if r.kind == mf.HYPERTABLE],
                    dump_seconds=1.0, taken_at=NOW.isoformat(), run_id="r")


def _restored(**relations: mf.Relation) -> dict[str, mf.Relation]:
    return {f"public.{k}": r for k, r in relations.items()}


DUMPED = {"a": mf.Relation(mf.HYPERTABLE, rows=3), "b": mf.Relation(mf.TABLE, rows=5),
          "c": mf.Relation(mf.TABLE, rows=1), "v": mf.Relation(mf.MATVIEW, populated=True),
          "w": mf.Relation(mf.MATVIEW, populated=False), "g": mf.Relation(mf.CAGG)}


def test_the_manifest_records_kinds_and_counts_only_tables() -> None:
    m = _manifest(**DUMPED)
    assert m["manifest_version"] == mf.MANIFEST_VERSION == 2
    assert m["row_counts"] == {"public.a": 3, "public.b": 5, "public.c": 1}
    assert m["relations"]["public.v"] == {"kind": "materialized view", "populated": True}
    assert m["relations"]["public.g"] == {"kind": "continuous aggregate"}
    assert m["relations"]["public.a"] == {"kind": "hypertable"} and m["total_rows"] == 9


@pytest.mark.parametrize("views", [
    pytest.param({"v": mf.Relation(mf.MATVIEW, populated=True), "w": mf.Relation(mf.MATVIEW, populated=False)},
                 id="as-dumped"),
    pytest.param({"v": mf.Relation(mf.MATVIEW, populated=True), "w": mf.Relation(mf.MATVIEW, populated=True)},
                 id="unpopulated-view-refreshed-since"),
])
def test_views_are_compared_by_presence_and_population_never_by_rows(views: dict[str, mf.Relation]) -> None:
    restored = _restored(**{k: r for k, r in DUMPED.items() if r.kind in mf.COUNTED}, g=mf.Relation(mf.CAGG),
                         **views)
    result = mf.compare(_manifest(**DUMPED), restored, invalid=[], restored_hypertables=["public.a"])
    assert result.ok, result.problems
    assert result.relations == 6 and result.rows == 9
    assert result.how_compared() == ("2 base tables and 1 hypertable by row count, 2 materialized views by presence "
                                     "and population state, 1 continuous aggregate by presence")


def test_compare_names_every_difference_with_its_kind() -> None:
    restored = _restored(a=mf.Relation(mf.TABLE, rows=3), b=mf.Relation(mf.TABLE, rows=4),
                         v=mf.Relation(mf.MATVIEW, populated=False), w=mf.Relation(mf.MATVIEW, populated=False),
                         d=mf.Relation(mf.TABLE, rows=0))
    result = mf.compare(_manifest(**DUMPED), restored, invalid=["public.idx_b"], restored_hypertables=[])
    assert result.problems == [
        "public.a (hypertable): a base table after restore",
        "public.b (base table): 4 rows after restore, 5 rows in the dump's snapshot",
        "public.c (base table): missing after restore (the dump's snapshot had 1 row)",
        "public.g (continuous aggregate): missing after restore",
        "public.v (materialized view): populated at dump time, not populated after restore",
        "public.d (base table): present after restore but not in the manifest",
        "index public.idx_b is invalid after restore",
    ]  # public.a's lost hypertable is said once, by its kind
    first, second = result.summary().splitlines()
    assert first == "; ".join(result.problems)
    assert second.startswith("every other relation matched: 1 of 6 (2 base tables and 1 hypertable by row count")
    assert {"fewer_rows", "missing", "unpopulated", "kind", "extra", "invalid_index"} == result.evidence
    assert "more rows" not in result.advice() and "pg_restore --list" in result.advice()


@pytest.mark.parametrize(("rows", "says"), [
    pytest.param(6, "more rows after restore than in the dump's snapshot cannot come from this dump", id="more"),
    pytest.param(4, "fewer rows (or a relation missing) after a restore without error", id="fewer"),
])
def test_the_advice_follows_the_direction_of_a_row_difference(rows: int, says: str) -> None:
    restored = _restored(a=mf.Relation(mf.HYPERTABLE, rows=3), b=mf.Relation(mf.TABLE, rows=rows),
                         c=mf.Relation(mf.TABLE, rows=1), v=mf.Relation(mf.MATVIEW, populated=True),
                         w=mf.Relation(mf.MATVIEW, populated=False), g=mf.Relation(mf.CAGG))
    result = mf.compare(_manifest(**DUMPED), restored)
    assert result.problems == [f"public.b (base table): {rows} rows after restore, 5 rows in the dump's snapshot"]
    assert result.summary().splitlines()[1].startswith("every other relation matched: 5 of 6")
    assert result.advice().startswith(says)


def test_a_version_1_manifest_compares_tables_by_rows_and_views_by_presence() -> None:
    """Version 1 counted views too and recorded no kinds: the restored database's kind decides."""
    v1 = {"manifest_version": 1, "row_counts": {"public.t": 10, "public.v": 0}, "hypertables": []}
    restored = _restored(t=mf.Relation(mf.TABLE, rows=10), v=mf.Relation(mf.MATVIEW, populated=True))
    assert mf.compare(v1, restored, invalid=[], restored_hypertables=None).ok  # the stale view's 0 rows: fine
    short = mf.compare(v1, _restored(t=mf.Relation(mf.TABLE, rows=9)))
    assert short.problems == ["public.t (base table): 9 rows after restore, 10 rows in the dump's snapshot",
                              "public.v (kind not recorded): missing after restore"]
    assert short.summary().splitlines()[1] == "none of the 2 relations of the manifest matched"


def test_retries_back_off_then_fail_with_every_attempt_in_the_message() -> None:
    calls, waits = [], []

    def flaky() -> str:
        calls.append(1)
        raise OSError(f"refused #{len(calls)}")

    policy = RetryPolicy(attempts=3, first_delay_s=0.01, max_delay_s=0.015)
    assert policy.delays() == [0.01, 0.015]
    with pytest.raises(BackupStoreError, match=r"after 3 attempts.*refused #1.*refused #3"):
        with_retries("upload of k", flaky, policy, say=lambda *a: waits.append(a[-1]))
    assert len(calls) == 3 and waits == [0.01, 0.015]


def test_retries_return_once_it_works() -> None:
    calls = []

    def second_time() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("blip")
        return "ok"

    assert with_retries("x", second_time, RetryPolicy(3, 0.0), say=lambda *a: None) == "ok"


def test_retry_waits_double_up_to_the_cap() -> None:
    assert RetryPolicy(attempts=6, first_delay_s=5, max_delay_s=60).delays() == [5, 10, 20, 40, 60]
    assert RetryPolicy(attempts=1).delays() == []


def test_an_error_that_is_no_s3_error_propagates_untouched_at_once() -> None:
    calls = []

    def bug() -> None:
        calls.append(1)
        raise ValueError("a bug, not the network")

    with pytest.raises(ValueError, match="a bug, not the network"):
        with_retries("x", bug, RetryPolicy(3, 0.0), say=lambda *a: None)
    assert len(calls) == 1


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutObject")


@pytest.mark.parametrize(("code", "status", "verdict"), [
    *[pytest.param(c, n, "deterministic", id=c) for c, n in [
        ("NoSuchBucket", 404), ("404", 404), ("NoSuchKey", 404), ("AccessDenied", 403), ("403", 403),
        ("InvalidAccessKeyId", 403), ("SignatureDoesNotMatch", 403), ("InvalidBucketName", 400),
        ("AllAccessDisabled", 403), ("AccountProblem", 403), ("ExpiredToken", 400), ("InvalidToken", 400),
        ("SomeNewDenial", 403)]],
    *[pytest.param(c, n, "transient", id=c) for c, n in [
        ("SlowDown", 503), ("Throttling", 400), ("ThrottlingException", 400), ("RequestLimitExceeded", 400),
        ("429", 429), ("InternalError", 500), ("ServiceUnavailable", 503), ("500", 500), ("502", 502),
        ("503", 503), ("504", 504), ("RequestTimeTooSkewed", 403), ("SomethingNew", 400)]],
])
def test_s3_error_codes_are_classified(code: str, status: int, verdict: str) -> None:
    assert s3_error(_client_error(code, status)) == (verdict, code)


def test_s3_errors_without_a_code_are_classified_by_their_type() -> None:
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ParamValidationError,
        ReadTimeoutError,
    )

    for exc in (EndpointConnectionError(endpoint_url="http://x"), ConnectTimeoutError(endpoint_url="http://x"),
                ReadTimeoutError(endpoint_url="http://x"), ConnectionResetError("reset")):
        assert s3_error(exc) == ("transient", type(exc).__name__)
    for exc in (NoCredentialsError(), ParamValidationError(report="Invalid bucket name")):
        assert s3_error(exc) == ("deterministic", type(exc).__name__)
    try:  # boto3 wraps the ClientError of an upload, as its upload_file does
        try:
            raise _client_error("NoSuchBucket", 404)
        except Exception as inner:
            raise S3UploadFailedError(f"Failed to upload x to b/k: {inner}") from None
    except S3UploadFailedError as wrapped:
        assert s3_error(wrapped) == ("deterministic", "NoSuchBucket")
    assert s3_error(ValueError("a bug")) is None


def test_a_deterministic_s3_error_is_not_retried() -> None:
    calls = []

    def denied() -> None:
        calls.append(1)
        raise _client_error("AccessDenied", 403)

    with pytest.raises(ActionableFailure, match=r"write of k: the credentials of connection quant_s3 may not do "
                                                r"this in 'b' \(AccessDenied; .*\); not retried") as failed:
        with_retries("write of k", denied, RetryPolicy(3, 0.0), bucket="b", key="k")
    assert len(calls) == 1 and "s3:PutObject" in failed.value.what_to_do


def test_the_password_goes_in_the_environment_not_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from psycopg.conninfo import conninfo_to_dict

    monkeypatch.setenv("PGPASSWORD", "stale")
    monkeypatch.setenv("PGSERVICE", "someone-elses")
    args = {"host": "db", "port": 5432, "dbname": "quant_platform", "user": "u", "password": "s3cret!",
            "sslmode": "verify-full", "sslrootcert": "/etc/ca.crt", "sslcert": "/etc/c.crt", "sslkey": "/etc/c.key",
            "keepalives": 1, "keepalives_idle": 30, "options": "-c statement_timeout=0"}
    target, env = client_target(args)
    assert "s3cret!" not in target and env["PGPASSWORD"] == "s3cret!"
    # every other libpq argument reaches the program, the ones without an environment variable too
    assert conninfo_to_dict(target) == {k: str(v) for k, v in args.items() if k != "password"}
    assert not any(k.startswith("PG") and k not in ("PGPASSWORD", "PGAPPNAME") for k in env)  # no PGSERVICE leak
    assert conninfo_to_dict(client_target({"host": "db"}, dbname="other")[0])["dbname"] == "other"
    assert "PGPASSWORD" not in client_target({"host": "db", "password": ""})[1]


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # more than one read chunk
    path = tmp_path / "x.dump"
    path.write_bytes(data)
    assert sha256_file(path) == (len(data), hashlib.sha256(data).hexdigest())


def test_manifest_write_is_whole_and_reads_back(tmp_path: Path) -> None:
    m = mf.build(name="n", dbname="d", s3_key="k", bucket="b", size_bytes=10, sha256="ab", pg_version="15.1",
                 tsdb_version=None, pg_dump_major=15, hypertable_names=[], dump_seconds=2.0,
                 relations={"public.a": mf.Relation(mf.TABLE, rows=2), "ops.b": mf.Relation(mf.TABLE, rows=3)},
                 taken_at=NOW.isoformat(), run_id="r")
    path = mf.write(m, tmp_path / "n.manifest.json")
    assert mf.read(path) == m and m["total_rows"] == 5 and m["verified"] is False
    assert list(tmp_path.iterdir()) == [path]


def test_params_schema_refuses_bad_values() -> None:
    from airflow.sdk.definitions.param import ParamsDict

    from quantdbops.backup.params import backup_params, restore_params

    for params, key, bad in [(backup_params(), "retention_days", 0), (restore_params(), "target_database", "Bad-Name"),
                             (restore_params(), "backup", "drop table x"), (backup_params(), "local_dir", "rel/dir")]:
        p = ParamsDict(params)
        with pytest.raises(Exception, match=r"valid|schema|match|minimum"):
            p[key] = bad
            p.validate()
    ok = ParamsDict(restore_params())
    ok["backup"] = "backups/quant_platform/2025/10/17/quant_platform_20251017T020000.dump"
    ok["target_database"] = "quant_platform"
    assert ok.validate()["target_database"] == "quant_platform"


def test_client_binaries_come_from_the_argument_then_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    from quantdbops.backup.dump import PgToolError, pg_bin, tool

    monkeypatch.setenv("QUANT_PG_BIN", str(tmp_path / "env"))
    assert pg_bin(tmp_path / "arg") == tmp_path / "arg"
    assert pg_bin() == tmp_path / "env"
    with pytest.raises(PgToolError, match="QUANT_PG_BIN"):  # a missing client says how to fix it
        tool("pg_dump")

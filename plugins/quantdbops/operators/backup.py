"""Operators of the backup and restore DAGs: thin orchestration over ``quantdbops.backup``.

Each builds ``BackupSettings`` from the run's params, opens its connections and hook inside ``execute``,
logs what it did for the on-call, and returns metadata only (keys, sizes, checksums, counts) to XCom.
Deterministic failures (checksum mismatch, missing confirmation, a restore that differs from its manifest, no
such database, role or bucket, refused credentials) raise ``ActionableFailure`` with the next step; transient
ones (database or bucket unreachable, throttled) propagate so retries help.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from quantdbops import CONN_POSTGRES, CONN_S3, PLATFORM_TZ
from quantdbops.errors import ActionableFailure, bad_params
from quantdbops.report import format_table


def _settings(context: Any, *, aws_conn_id: str, postgres_conn_id: str, bin_dir: str | None,
              retry: Any = None, part_size: int = 0) -> Any:
    from quantdbops.backup.naming import default_local_dir, default_work_dir
    from quantdbops.backup.settings import BackupSettings, resolve_bucket, resolve_encryption
    from quantdbops.backup.store import RetryPolicy

    p = context["params"]
    try:
        extra = _s3_extra(aws_conn_id)
        return BackupSettings(
            bucket=resolve_bucket(p.get("bucket")), local_dir=Path(p.get("local_dir") or default_local_dir()),
            bin_dir=bin_dir, retention_days=int(p.get("retention_days", 30)),
            keep_verified=int(p.get("keep_verified", 7)), verify=bool(p.get("verify", True)),
            dry_run=bool(p.get("dry_run", False)), postgres_conn_id=postgres_conn_id, aws_conn_id=aws_conn_id,
            retry=retry or RetryPolicy(),
            encryption=resolve_encryption(p.get("server_side_encryption"), p.get("kms_key_id"), extra),
            keep_local_copy=bool(p.get("keep_local_copy", False)), part_size=part_size, work_dir=default_work_dir())
    except ValueError as exc:
        raise bad_params(exc, nothing="nothing was written") from exc


def _s3_extra(aws_conn_id: str) -> dict[str, Any]:
    """The S3 connection's extra (where its default server-side encryption may be set); {} without one."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(aws_conn_id).extra_dejson
    except AirflowNotFoundException:
        return {}


def _when(context: Any) -> datetime:
    from zoneinfo import ZoneInfo

    when = context.get("logical_date") or datetime.now(ZoneInfo(PLATFORM_TZ))
    return datetime.fromtimestamp(when.timestamp(), ZoneInfo(PLATFORM_TZ))


def _mb(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:,.2f} MB"


class _BackupBase(BaseOperator):
    """Connection ids, the client binaries directory and the S3 retry policy every step shares."""

    # For a failure the step did not explain itself (the alert's "what to do").
    what_to_do = ("a database or S3 error past its retries: check that the quant_postgres database and the quant_s3 "
                  "endpoint answer, then clear the failed task; nothing moves 'latest' before a backup is proven")

    def __init__(self, *, postgres_conn_id: str = CONN_POSTGRES, aws_conn_id: str = CONN_S3,
                 bin_dir: str | None = None, s3_attempts: int = 3, s3_first_delay_s: float = 5.0,
                 part_size_mb: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if s3_attempts < 1 or s3_first_delay_s < 0 or not (part_size_mb == 0 or 5 <= part_size_mb <= 5120):
            raise ValueError("s3_attempts >= 1, s3_first_delay_s >= 0, part_size_mb 0 (from the database's size) "
                             "or 5..5120 (S3's part sizes)")
        self.postgres_conn_id = postgres_conn_id
        self.aws_conn_id = aws_conn_id
        self.bin_dir = bin_dir
        self.s3_attempts = s3_attempts
        self.s3_first_delay_s = s3_first_delay_s
        self.part_size_mb = part_size_mb

    def settings(self, context: Any) -> Any:
        from quantdbops.backup.store import MB, RetryPolicy

        return _settings(context, aws_conn_id=self.aws_conn_id, postgres_conn_id=self.postgres_conn_id,
                         bin_dir=self.bin_dir, retry=RetryPolicy(self.s3_attempts, self.s3_first_delay_s),
                         part_size=self.part_size_mb * MB)

    def target(self) -> Any:
        """The database, through the postgres provider's hook (every connection extra applies)."""
        from quantdbops.io.pg import PgTarget

        return PgTarget(conn_id=self.postgres_conn_id)

    def hook(self, s: Any) -> Any:
        from quantdbops.backup.store import make_hook

        return make_hook(s.aws_conn_id)

    def upstream(self, context: Any, task_id: str) -> dict[str, Any]:
        value = context["ti"].xcom_pull(task_ids=task_id)
        if not value:
            raise ActionableFailure(f"no result from {task_id}", what_to_do=f"clear {task_id} and this task")
        return value


class BackupPreflightOperator(_BackupBase):
    """Database answers, pg_dump fits the server, disk holds the dump, the bucket answers; plans the names."""

    ui_color = "#e8f0fe"

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.dump import PgToolError
        from quantdbops.backup.nightly import DiskShortage, PreflightError, preflight

        s = self.settings(context)
        try:
            plan = preflight(self.target(), self.hook(s), s, _when(context))
        except PgToolError as exc:
            raise ActionableFailure(str(exc), what_to_do="install or point at the PostgreSQL client tools as the "
                                    "message says, on every worker; then clear this task") from exc
        except PreflightError as exc:
            if isinstance(exc, DiskShortage):
                raise ActionableFailure(str(exc), what_to_do=(
                    "free space on the worker (its temp dir holds the dump while verify restores it; local_dir a "
                    "kept copy), or point QUANT_BACKUP_WORK_DIR / the local_dir param at a bigger volume; then "
                    "clear this task. Nothing was written")) from exc
            raise
        self.log.info("Backup plan%s:\n%s", " (DRY RUN: nothing will be written)" if s.dry_run else "", format_table(
            ["item", "value"],
            [("database", f"{plan['dbname']} ({_mb(plan['db_size_bytes'])})"),
             ("backup name", f"{plan['name']} (taken at {plan['taken_at']}, {PLATFORM_TZ} time; the log lines' "
                             "timestamps are UTC)"),
             ("versions", f"PostgreSQL {plan['pg_version']}, TimescaleDB {plan['tsdb_version'] or 'not installed'}, "
                          f"pg_dump {plan['pg_dump_major']}"),
             ("S3 key", f"s3://{s.bucket}/{plan['s3_key']} (streamed: no dump on this worker's disk)"),
             ("manifest", plan["manifest_key"]),
             ("encryption", s.encryption.algorithm or "none asked (the bucket's default)"),
             ("free disk", ", ".join(f"{_mb(v)} in {k}" for k, v in plan["free_bytes"].items()) or "not needed"),
             ("local copy", plan["local_copy"] or "no (keep_local_copy is off)"),
             ("verify restore", "yes" if s.verify else "no"),
             ("retention", f"older than {s.retention_days} days, keeping the newest {s.keep_verified} verified")]))
        if not plan["journal"]:
            self.log.warning("ops.backups does not exist in %s: this backup is not journaled (apply the schema)",
                             plan["dbname"])
        return {**plan, "dry_run": s.dry_run, "verify": s.verify}


class DumpDatabaseOperator(_BackupBase):
    """pg_dump -Fc in one snapshot, streamed into the bucket (multipart, SHA-256 on the way, encrypted at rest),
    then the manifest with that snapshot's relations and rows beside it."""

    ui_color = "#e6f4ea"

    def __init__(self, *, preflight_task_id: str = "preflight", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.preflight_task_id = preflight_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.nightly import dump
        from quantdbops.backup.store import BackupStoreError

        s = self.settings(context)
        if s.dry_run:
            raise AirflowSkipException("dry run: no dump taken")
        plan = self.upstream(context, self.preflight_task_id)
        try:
            d = dump(self.target(), self.hook(s), plan, s, run_id=context["run_id"], say=self.log.info)
        except BackupStoreError as exc:
            hint = ("this task retries by itself (the dump is taken again and streamed again); when S3 answers, "
                    "clear this task")
            err = BackupStoreError(f"{exc}. The multipart upload was aborted: no object, no manifest, 'latest' not "
                                   "moved")
            err.what_to_do = hint  # a retry may help: not an ActionableFailure, but the alert gets the next step
            raise err from exc
        self.log.info("Dump of %s streamed to s3://%s/%s: %s in %.1fs (%.1f MB/s, %d parts), sha256 %s, "
                      "encryption %s, %d tables (%s rows), %d views; manifest %s%s", d["dbname"], s.bucket,
                      d["s3_key"], _mb(d["size_bytes"]), d["dump_seconds"],
                      d["size_bytes"] / 1e6 / max(d["dump_seconds"], 1e-9), d["parts"], d["sha256"],
                      d["encryption"].get("algorithm") or "the bucket's default", d["tables"], f"{d['rows']:,}",
                      d["views"], d["manifest_key"],
                      "; read back and latest moved" if d["latest_moved"] else "; latest moves after verification")
        return d


class VerifyBackupOperator(_BackupBase):
    """Restore into a scratch database, compare it with the manifest (tables by rows, views by presence and
    population), drop it, mark verified."""

    ui_color = "#fef7e0"

    def __init__(self, *, dump_task_id: str = "dump", **kwargs: Any) -> None:
        kwargs.setdefault("retries", 1)
        super().__init__(**kwargs)
        self.dump_task_id = dump_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.nightly import VerificationError, verify

        s = self.settings(context)
        if s.dry_run:
            raise AirflowSkipException("dry run: nothing to verify")
        if not s.verify:
            raise AirflowSkipException("verify is off for this run: the backup stays 'uploaded', not 'verified'")
        d = self.upstream(context, self.dump_task_id)
        try:
            v = verify(self.target(), self.hook(s), d, s, say=self.log.info)
        except VerificationError as exc:
            raise ActionableFailure(
                f"{exc}\nThe backup is in S3 but marked failed in ops.backups.", what_to_do=f"{exc.advice}. Meanwhile "
                "the previous verified backup ('latest') is the one to restore") from exc
        self.log.info("Verification restore into %s equal to the manifest: %d relations (%s), %s table rows, in "
                      "%.1fs; scratch database dropped; latest now points at %s", v["scratch_db"],
                      v["verify_relations"], v["verify_compared"], f"{v['verify_rows']:,}", v["verify_seconds"],
                      v["s3_key"])
        return v


class BackupRetentionOperator(_BackupBase):
    """Delete backups older than retention_days, never the newest keep_verified verified ones (dry run: plan)."""

    ui_color = "#f1f3f4"

    def __init__(self, *, preflight_task_id: str = "preflight", **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.preflight_task_id = preflight_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.nightly import retention

        s = self.settings(context)
        plan = self.upstream(context, self.preflight_task_id)
        r = retention(self.target(), self.hook(s), s, dbname=plan["dbname"], now=_when(context),
                      current=None if s.dry_run else plan["name"])
        rows = [(stem, "DELETE" if not s.dry_run else "would delete", "older than "
                 f"{s.retention_days} days") for stem in r["deleted"]]
        rows += [(stem, "keep", why) for stem, why in sorted(r["kept"].items(), reverse=True)]
        self.log.info("Retention%s:\n%s", " (DRY RUN)" if s.dry_run else "",
                      format_table(["backup", "action", "why"], rows or [("(none)", "", "")]))
        return {k: v for k, v in r.items() if k != "kept"} | {"kept": len(r["kept"])}


class BackupReportOperator(_BackupBase):
    """The last lines of the run: size, duration, MB/s, checksum, key, verified."""

    def __init__(self, *, task_ids: Sequence[str] = ("preflight", "dump", "verify", "retention"),
                 **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.task_ids = list(task_ids)

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        got = {t: ti.xcom_pull(task_ids=t) or {} for t in self.task_ids}
        plan, d, v, r = (got.get(t, {}) for t in self.task_ids)
        if plan.get("dry_run"):
            self.log.info("DRY RUN summary:\n%s", format_table(["item", "value"], [
                ("would dump", f"{plan.get('dbname')} (~{_mb(plan.get('db_size_bytes'))})"),
                ("to", f"s3://{plan.get('bucket')}/{plan.get('s3_key')}"),
                ("retention would delete", ", ".join(r.get("deleted", [])) or "nothing")]))
            return {"dry_run": True}
        seconds = float(d.get("dump_seconds", 0))
        size = int(d.get("size_bytes", 0))
        summary = {"size_bytes": size, "seconds": round(seconds, 3),
                   "mb_per_s": round(size / 1e6 / seconds, 2) if seconds else None, "sha256": d.get("sha256"),
                   "s3_key": d.get("s3_key"), "verified": bool(v.get("verified")),
                   "encryption": (d.get("encryption") or {}).get("algorithm"), "deleted": len(r.get("deleted", []))}
        self.log.info("Backup %s:\n%s", plan.get("name"), format_table(
            ["size", "duration (dump into the bucket)", "MB/s", "sha256", "key", "verified"],
            [(_mb(size), f"{seconds:.1f}s", f"{summary['mb_per_s'] or 0:.1f}", str(summary["sha256"])[:16] + "…",
              f"s3://{plan.get('bucket')}/{summary['s3_key']}", "yes" if summary["verified"] else "no")]))
        return summary


# --- the restore DAG -------------------------------------------------------------------------------------
def _restore_request(context: Any) -> tuple[str, str, str]:
    from quantdbops.backup.naming import check_db_name

    p = context["params"]
    try:
        target = check_db_name(p["target_database"])
    except ValueError as exc:
        raise bad_params(exc, nothing="nothing was touched") from exc
    return p.get("backup") or "latest", target, p.get("confirm_target") or ""


class ResolveRestoreOperator(_BackupBase):
    """Which dump (latest, a key, a local path) and its manifest; the target's existence and confirmation."""

    ui_color = "#e8f0fe"

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.recover import RestoreRefused, check_target, resolve

        s = self.settings(context)
        backup, target, confirm = _restore_request(context)
        db = self.target()
        source_db = context["params"].get("source_database") or db.dbname
        try:
            resolved = resolve(self.hook(s), s, backup, source_db)
            exists = check_target(db, target, confirm)
        except RestoreRefused as exc:
            raise ActionableFailure(str(exc), what_to_do="nothing was touched; trigger again with the params the "
                                    "message asks for") from exc
        m = resolved["manifest"]
        self.log.info("Restore plan:\n%s", format_table(["item", "value"], [
            ("backup", f"{resolved['source']}: {resolved['dump']}"), ("taken at", m.get("taken_at")),
            ("size / sha256", f"{_mb(m['size_bytes'])} / {m['sha256']}"),
            ("versions", f"PostgreSQL {m.get('pg_version')}, TimescaleDB {m.get('tsdb_version') or '-'}"),
            ("verified", "yes" if m.get("verified") else "NO (never restored before)"),
            ("target", f"{target} ({'EXISTS: safety backup first, then replaced' if exists else 'new'})")]))
        return {**resolved, "target": target, "target_exists": exists}


class FetchBackupOperator(_BackupBase):
    """Read the dump through once and prove its size and SHA-256 against the manifest before anything is
    touched (nothing is kept: the restore fetches and proves it again on whichever worker it runs)."""

    ui_color = "#fce8e6"

    def __init__(self, *, resolve_task_id: str = "resolve", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resolve_task_id = resolve_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.recover import RestoreRefused, check

        s = self.settings(context)
        r = self.upstream(context, self.resolve_task_id)
        try:
            f = check(self.hook(s), s, r, say=self.log.info)
        except RestoreRefused as exc:
            raise ActionableFailure(str(exc), what_to_do=(
                "nothing was restored and the target is untouched; the object in S3 does not match its manifest: "
                "restore another backup (name it in the backup param) and find out what changed the bucket")) from exc
        self.log.info("Checksum OK: %s (%s, sha256 %s, read in %.1fs)", f["dump"], _mb(f["size_bytes"]), f["sha256"],
                      f["seconds"])
        return f


class SafetyBackupOperator(_BackupBase):
    """Dump the existing target into the bucket before it is replaced; skipped for a new target."""

    ui_color = "#e6f4ea"

    def __init__(self, *, resolve_task_id: str = "resolve", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resolve_task_id = resolve_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.recover import safety_backup

        s = self.settings(context)
        r = self.upstream(context, self.resolve_task_id)
        if not r["target_exists"]:
            raise AirflowSkipException(f"{r['target']} does not exist yet: nothing to save")
        return safety_backup(self.target(), self.hook(s), s, r["target"], say=self.log.info)


class RestoreDatabaseOperator(_BackupBase):
    """Fetch and prove the dump on this worker, replace the target with it, then check it: tables by rows, views
    by presence and population, indexes and hypertables."""

    ui_color = "#fef7e0"

    def __init__(self, *, resolve_task_id: str = "resolve", **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)  # destructive: a person decides on a second attempt
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.resolve_task_id = resolve_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.recover import RestoreRefused, restore

        s = self.settings(context)
        r = self.upstream(context, self.resolve_task_id)
        m = r["manifest"]
        try:
            result = restore(self.target(), self.hook(s), s, r["target"], r, say=self.log.info)
        except RestoreRefused as exc:
            raise ActionableFailure(str(exc), what_to_do="the target was not touched: restore another backup") from exc
        lines, summary, advice = result.pop("lines"), result.pop("summary"), result.pop("advice")
        self.log.info("Restored %s into %s in %.1fs (%.1f MB/s):\n%s", r["dump"], r["target"], result["seconds"],
                      m["size_bytes"] / 1e6 / max(result["seconds"], 1e-9),
                      format_table(["relation", "kind", "manifest", "restored", ""], lines))
        if not result["ok"]:
            raise ActionableFailure(
                f"{r['target']} was restored but differs from the manifest: {summary}",
                what_to_do=f"do not point applications at it; {advice}. The safety backup (if any) is named in the "
                           "safety_backup task's log: restore that one to go back")
        return result

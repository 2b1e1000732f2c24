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
              retry: Any = None, transfer: dict[str, Any] | None = None) -> Any:
    from quantdbops.backup.naming import default_local_dir
    from quantdbops.backup.settings import BackupSettings, resolve_bucket
    from quantdbops.backup.store import RetryPolicy

    p = context["params"]
    try:
        return BackupSettings(
            bucket=resolve_bucket(p.get("bucket")), local_dir=Path(p.get("local_dir") or default_local_dir()),
            bin_dir=bin_dir, retention_days=int(p.get("retention_days", 30)),
            keep_verified=int(p.get("keep_verified", 7)), verify=bool(p.get("verify", True)),
            dry_run=bool(p.get("dry_run", False)), postgres_conn_id=postgres_conn_id, aws_conn_id=aws_conn_id,
            retry=retry or RetryPolicy(), transfer=transfer or {})
    except ValueError as exc:
        raise bad_params(exc, nothing="nothing was written") from exc


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
                 multipart_chunk_mb: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if s3_attempts < 1 or s3_first_delay_s < 0 or multipart_chunk_mb < 5:
            raise ValueError("s3_attempts >= 1, s3_first_delay_s >= 0, multipart_chunk_mb >= 5 (S3's minimum)")
        self.postgres_conn_id = postgres_conn_id
        self.aws_conn_id = aws_conn_id
        self.bin_dir = bin_dir
        self.s3_attempts = s3_attempts
        self.s3_first_delay_s = s3_first_delay_s
        self.multipart_chunk_mb = multipart_chunk_mb

    def settings(self, context: Any) -> Any:
        from quantdbops.backup.store import MB, RetryPolicy

        chunk = self.multipart_chunk_mb * MB
        return _settings(context, aws_conn_id=self.aws_conn_id, postgres_conn_id=self.postgres_conn_id,
                         bin_dir=self.bin_dir, retry=RetryPolicy(self.s3_attempts, self.s3_first_delay_s),
                         transfer={"multipart_threshold": chunk, "multipart_chunksize": chunk})

    def conn_kwargs(self) -> dict[str, object]:
        from quantdbops.io.pg import connection_kwargs

        return connection_kwargs(self.postgres_conn_id)

    def hook(self, s: Any) -> Any:
        from quantdbops.backup.store import make_hook

        return make_hook(s.aws_conn_id, transfer=s.transfer)

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
        from quantdbops.backup.nightly import PreflightError, preflight

        s = self.settings(context)
        try:
            plan = preflight(self.conn_kwargs(), self.hook(s), s, _when(context))
        except PgToolError as exc:
            raise ActionableFailure(str(exc), what_to_do="install or point at the PostgreSQL client tools as the "
                                    "message says, on every worker; then clear this task") from exc
        except PreflightError as exc:
            if "free" in str(exc):
                raise ActionableFailure(str(exc), what_to_do=(
                    f"free space in {s.local_dir} or point the local_dir param (QUANT_BACKUP_DIR) at a bigger "
                    "volume; then clear this task. Nothing was written")) from exc
            raise
        self.log.info("Backup plan%s:\n%s", " (DRY RUN: nothing will be written)" if s.dry_run else "", format_table(
            ["item", "value"],
            [("database", f"{plan['dbname']} ({_mb(plan['db_size_bytes'])})"),
             ("versions", f"PostgreSQL {plan['pg_version']}, TimescaleDB {plan['tsdb_version'] or 'not installed'}, "
                          f"pg_dump {plan['pg_dump_major']}"),
             ("local dump", plan["local_path"]), ("free disk", _mb(plan["free_bytes"])),
             ("S3 key", f"s3://{s.bucket}/{plan['s3_key']}"), ("manifest", plan["manifest_key"]),
             ("verify restore", "yes" if s.verify else "no"),
             ("retention", f"older than {s.retention_days} days, keeping the newest {s.keep_verified} verified")]))
        if not plan["journal"]:
            self.log.warning("ops.backups does not exist in %s: this backup is not journaled (apply the schema)",
                             plan["dbname"])
        return {**plan, "dry_run": s.dry_run, "verify": s.verify}


class DumpDatabaseOperator(_BackupBase):
    """pg_dump -Fc in one snapshot, SHA-256 while streaming, manifest with that snapshot's relations and rows."""

    ui_color = "#e6f4ea"

    def __init__(self, *, preflight_task_id: str = "preflight", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.preflight_task_id = preflight_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.nightly import dump

        s = self.settings(context)
        if s.dry_run:
            raise AirflowSkipException("dry run: no dump taken")
        d = dump(self.conn_kwargs(), self.upstream(context, self.preflight_task_id), s, run_id=context["run_id"],
                 say=self.log.info)
        self.log.info("Dump of %s: %s in %.1fs (%.1f MB/s), sha256 %s, %d tables (%s rows), %d views, kept at %s",
                      d["dbname"], _mb(d["size_bytes"]), d["dump_seconds"],
                      d["size_bytes"] / 1e6 / max(d["dump_seconds"], 1e-9), d["sha256"], d["tables"],
                      f"{d['rows']:,}", d["views"], d["local_path"])
        return d


class UploadBackupOperator(_BackupBase):
    """Upload with retries, read size and SHA-256 back, then the manifest (and "latest" when not verifying)."""

    ui_color = "#fce8e6"

    def __init__(self, *, dump_task_id: str = "dump", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dump_task_id = dump_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.nightly import upload
        from quantdbops.backup.store import BackupStoreError

        s = self.settings(context)
        if s.dry_run:
            raise AirflowSkipException("dry run: nothing uploaded")
        d = self.upstream(context, self.dump_task_id)
        try:
            u = upload(self.conn_kwargs(), self.hook(s), d, s, say=self.log.warning)
        except BackupStoreError as exc:
            hint = "this task retries by itself; when S3 is back, clear this task (not the dump)"
            err = BackupStoreError(f"{exc}. No manifest was written and 'latest' was not moved. The dump is kept "
                                   f"at {d['local_path']}: {hint}.")
            err.what_to_do = hint  # a retry may help: not an ActionableFailure, but the alert gets the next step
            raise err from exc
        except ActionableFailure as exc:  # the bucket refused for good (no bucket, no access): no retry
            raise ActionableFailure(f"{exc.message}. No manifest was written and 'latest' was not moved; the dump "
                                    f"is kept at {d['local_path']}",
                                    what_to_do=f"{exc.what_to_do} (upload only: the dump is kept)") from exc
        self.log.info("Uploaded and read back s3://%s/%s: %s in %.1fs, sha256 matches; manifest %s%s",
                      s.bucket, u["s3_key"], _mb(u["size_bytes"]), u["upload_seconds"], u["manifest_key"],
                      "; latest moved" if u["latest_moved"] else "; latest moves after verification")
        return u


class VerifyBackupOperator(_BackupBase):
    """Restore into a scratch database, compare it with the manifest (tables by rows, views by presence and
    population), drop it, mark verified."""

    ui_color = "#fef7e0"

    def __init__(self, *, upload_task_id: str = "upload", **kwargs: Any) -> None:
        kwargs.setdefault("retries", 1)
        super().__init__(**kwargs)
        self.upload_task_id = upload_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.nightly import VerificationError, verify

        s = self.settings(context)
        if s.dry_run:
            raise AirflowSkipException("dry run: nothing to verify")
        if not s.verify:
            raise AirflowSkipException("verify is off for this run: the backup stays 'uploaded', not 'verified'")
        u = self.upstream(context, self.upload_task_id)
        try:
            v = verify(self.conn_kwargs(), self.hook(s), u, s, say=self.log.info)
        except VerificationError as exc:
            raise ActionableFailure(
                f"{exc}\nThe backup is in S3 but marked failed in ops.backups; 'latest' still points at the "
                "previous verified backup", what_to_do=f"{exc.advice}. Meanwhile the previous verified backup is "
                "the one to restore") from exc
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
        r = retention(self.conn_kwargs(), self.hook(s), s, dbname=plan["dbname"], now=_when(context),
                      current=None if s.dry_run else plan["name"])
        rows = [(stem, "DELETE" if not s.dry_run else "would delete", "older than "
                 f"{s.retention_days} days") for stem in r["deleted"]]
        rows += [(stem, "keep", why) for stem, why in sorted(r["kept"].items(), reverse=True)]
        self.log.info("Retention%s:\n%s", " (DRY RUN)" if s.dry_run else "",
                      format_table(["backup", "action", "why"], rows or [("(none)", "", "")]))
        return {k: v for k, v in r.items() if k != "kept"} | {"kept": len(r["kept"])}


class BackupReportOperator(_BackupBase):
    """The last lines of the run: size, duration, MB/s, checksum, key, verified."""

    def __init__(self, *, task_ids: Sequence[str] = ("preflight", "dump", "upload", "verify", "retention"),
                 **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.task_ids = list(task_ids)

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        got = {t: ti.xcom_pull(task_ids=t) or {} for t in self.task_ids}
        plan, d, u, v, r = (got.get(t, {}) for t in self.task_ids)
        if plan.get("dry_run"):
            self.log.info("DRY RUN summary:\n%s", format_table(["item", "value"], [
                ("would dump", f"{plan.get('dbname')} (~{_mb(plan.get('db_size_bytes'))})"),
                ("to", f"s3://{plan.get('bucket')}/{plan.get('s3_key')}"),
                ("retention would delete", ", ".join(r.get("deleted", [])) or "nothing")]))
            return {"dry_run": True}
        seconds = float(d.get("dump_seconds", 0)) + float(u.get("upload_seconds", 0))
        size = int(d.get("size_bytes", 0))
        summary = {"size_bytes": size, "seconds": round(seconds, 3),
                   "mb_per_s": round(size / 1e6 / seconds, 2) if seconds else None, "sha256": d.get("sha256"),
                   "s3_key": u.get("s3_key"), "verified": bool(v.get("verified")),
                   "deleted": len(r.get("deleted", []))}
        self.log.info("Backup %s:\n%s", plan.get("name"), format_table(
            ["size", "duration (dump+upload)", "MB/s", "sha256", "key", "verified"],
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
        kwargs = self.conn_kwargs()
        source_db = context["params"].get("source_database") or str(kwargs.get("dbname"))
        try:
            resolved = resolve(self.hook(s), s, backup, source_db)
            exists = check_target(kwargs, target, confirm)
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
    """Download the dump and prove its size and SHA-256 against the manifest before anything is restored."""

    ui_color = "#fce8e6"

    def __init__(self, *, resolve_task_id: str = "resolve", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resolve_task_id = resolve_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.recover import RestoreRefused, fetch

        s = self.settings(context)
        r = self.upstream(context, self.resolve_task_id)
        try:
            f = fetch(self.hook(s), s, r, say=self.log.info)
        except RestoreRefused as exc:
            raise ActionableFailure(str(exc), what_to_do=(
                "nothing was restored and the target is untouched; the object in S3 does not match its manifest: "
                "restore another backup (name it in the backup param) and find out what changed the bucket")) from exc
        self.log.info("Checksum OK: %s (%s, sha256 %s)", f["local_path"], _mb(f["size_bytes"]), f["sha256"])
        return f


class SafetyBackupOperator(_BackupBase):
    """Dump the existing target (kept locally and uploaded) before it is replaced; skipped for a new target."""

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
        return safety_backup(self.conn_kwargs(), self.hook(s), s, r["target"], say=self.log.info)


class RestoreDatabaseOperator(_BackupBase):
    """Replace the target with the dump, then check it: tables by rows, views by presence and population,
    indexes and hypertables."""

    ui_color = "#fef7e0"

    def __init__(self, *, resolve_task_id: str = "resolve", fetch_task_id: str = "fetch", **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)  # destructive: a person decides on a second attempt
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.resolve_task_id = resolve_task_id
        self.fetch_task_id = fetch_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.backup.recover import restore

        s = self.settings(context)
        r = self.upstream(context, self.resolve_task_id)
        f = self.upstream(context, self.fetch_task_id)
        m = r["manifest"]
        result = restore(self.conn_kwargs(), s, r["target"], f["local_path"], m, say=self.log.info)
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

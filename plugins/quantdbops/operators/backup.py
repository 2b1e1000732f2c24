"""Operators of the backup and restore DAGs: thin orchestration over ``quantdbops.backup``.

Each reads the run's request (``BackupRequest`` / ``RestoreRequest``), resolves it into ``BackupSettings``, opens
the database and the bucket only when it runs, logs what it did for the on-call, and returns a typed result
(keys, sizes, checksums, counts) that the next step receives through the DAG's wiring. Deterministic failures
(checksum mismatch, missing confirmation, a restore that differs from its manifest, no such database, role or
bucket, refused credentials) raise ``ActionableFailure`` with the next step; transient ones (database or bucket
unreachable, throttled) propagate so retries help.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from quantdbops import CONN_S3, PLATFORM_TZ
from quantdbops.backup.params import BackupRequest, RestoreRequest
from quantdbops.backup.results import (
    BackupPlan,
    BackupSummary,
    DumpProof,
    RestoreOutcome,
    RestorePlan,
    RetentionOutcome,
    SafetyBackup,
    UploadedBackup,
    Verification,
)
from quantdbops.errors import ActionableFailure
from quantdbops.operators.base import QuantOperator
from quantdbops.report import format_table


def _when(context: Any) -> datetime:
    from zoneinfo import ZoneInfo

    when = context.get("logical_date") or datetime.now(ZoneInfo(PLATFORM_TZ))
    return datetime.fromtimestamp(when.timestamp(), ZoneInfo(PLATFORM_TZ))


def _mb(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:,.2f} MB"


def _needed(value: Any, step: str) -> Any:
    """An upstream result this step cannot do without (it is None when that step failed or was skipped)."""
    if value is None:
        raise ActionableFailure(f"no result from {step}", what_to_do=f"clear {step} and this task")
    return value


class BackupStep(QuantOperator[Any]):
    """A step of the backup or restore DAG: the database and S3 connection ids, the client binaries directory,
    the S3 retry policy and part size; ``settings`` resolves the run's request with them."""

    request_type = BackupRequest
    # For a failure the step did not explain itself (the alert's "what to do").
    what_to_do = ("a database or S3 error past its retries: check that the quant_postgres database and the quant_s3 "
                  "endpoint answer, then clear the failed task; nothing moves 'latest' before a backup is proven")

    def __init__(self, *, aws_conn_id: str = CONN_S3, bin_dir: str | None = None, s3_attempts: int = 3,
                 s3_first_delay_s: float = 5.0, part_size_mb: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if s3_attempts < 1 or s3_first_delay_s < 0 or not (part_size_mb == 0 or 5 <= part_size_mb <= 5120):
            raise ValueError("s3_attempts >= 1, s3_first_delay_s >= 0, part_size_mb 0 (from the database's size) "
                             "or 5..5120 (S3's part sizes)")
        self.aws_conn_id = aws_conn_id
        self.bin_dir = bin_dir
        self.s3_attempts = s3_attempts
        self.s3_first_delay_s = s3_first_delay_s
        self.part_size_mb = part_size_mb

    def settings(self, request: Any) -> Any:
        """The run's ``BackupSettings``."""
        from quantdbops.backup.settings import BackupSettings
        from quantdbops.backup.store import MB, RetryPolicy

        try:
            return BackupSettings.resolve(request, postgres_conn_id=self.postgres_conn_id,
                                          aws_conn_id=self.aws_conn_id, bin_dir=self.bin_dir,
                                          retry=RetryPolicy(self.s3_attempts, self.s3_first_delay_s),
                                          part_size=self.part_size_mb * MB)
        except ValueError as exc:
            from quantdbops.errors import bad_params

            raise bad_params(exc, nothing=self.nothing_done) from exc

    @cached_property
    def s3(self) -> Any:
        """The bucket's hook (the amazon provider's ``S3Hook``), made when a step first uses it."""
        from quantdbops.backup.store import make_hook

        return make_hook(self.aws_conn_id)


class BackupPreflightOperator(BackupStep):
    """Database answers, pg_dump fits the server, disk holds the dump, the bucket answers; plans the names."""

    ui_color = "#e8f0fe"
    results = (BackupPlan,)

    def run(self, request: BackupRequest, context: Any) -> BackupPlan:
        from quantdbops.backup.dump import PgToolError
        from quantdbops.backup.nightly_steps import DiskShortage, PreflightError, preflight

        s = self.settings(request)
        try:
            plan = preflight(self.database, self.s3, s, _when(context))
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
            [("database", f"{plan.dbname} ({_mb(plan.db_size_bytes)})"),
             ("backup name", f"{plan.name} (taken at {plan.taken_at}, {PLATFORM_TZ} time; the log lines' "
                             "timestamps are UTC)"),
             ("versions", f"PostgreSQL {plan.pg_version}, TimescaleDB {plan.tsdb_version or 'not installed'}, "
                          f"pg_dump {plan.pg_dump_major}"),
             ("S3 key", f"s3://{s.bucket}/{plan.s3_key} (streamed: no dump on this worker's disk)"),
             ("manifest", plan.manifest_key),
             ("encryption", s.encryption.algorithm or "none asked (the bucket's default)"),
             ("free disk", ", ".join(f"{_mb(v)} in {k}" for k, v in plan.free_bytes.items()) or "not needed"),
             ("local copy", plan.local_copy or "no (keep_local_copy is off)"),
             ("verify restore", "yes" if s.verify else "no"),
             ("retention", f"older than {s.retention_days} days, keeping the newest {s.keep_verified} verified")]))
        if not plan.journal:
            self.log.warning("ops.backups does not exist in %s: this backup is not journaled (apply the schema)",
                             plan.dbname)
        return plan


class DumpDatabaseOperator(BackupStep):
    """pg_dump -Fc in one snapshot, streamed into the bucket (multipart, SHA-256 on the way, encrypted at rest),
    then the manifest with that snapshot's relations and rows beside it."""

    ui_color = "#e6f4ea"
    template_fields = ("plan",)
    results = (UploadedBackup,)

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan  # preflight's BackupPlan

    def run(self, request: BackupRequest, context: Any) -> UploadedBackup:
        from quantdbops.backup.nightly_steps import dump
        from quantdbops.backup.store import BackupStoreError

        if request.dry_run:
            raise AirflowSkipException("dry run: no dump taken")
        s = self.settings(request)
        plan: BackupPlan = _needed(self.plan, "preflight")
        try:
            d = dump(self.database, self.s3, plan, s, run_id=context["run_id"], say=self.log.info)
        except BackupStoreError as exc:
            hint = ("this task retries by itself (the dump is taken again and streamed again); when S3 answers, "
                    "clear this task")
            err = BackupStoreError(f"{exc}. The multipart upload was aborted: no object, no manifest, 'latest' not "
                                   "moved")
            err.what_to_do = hint  # a retry may help: not an ActionableFailure, but the alert gets the next step
            raise err from exc
        self.log.info("Dump of %s streamed to s3://%s/%s: %s in %.1fs (%.1f MB/s, %d parts), sha256 %s, "
                      "encryption %s, %d tables (%s rows), %d views; manifest %s%s", d.dbname, s.bucket,
                      d.s3_key, _mb(d.size_bytes), d.dump_seconds, d.mb_per_s, d.parts, d.sha256,
                      d.encryption.get("algorithm") or "the bucket's default", d.tables, f"{d.rows:,}",
                      d.views, d.manifest_key,
                      "; read back and latest moved" if d.latest_moved else "; latest moves after verification")
        return d


class VerifyBackupOperator(BackupStep):
    """Restore into a scratch database, compare it with the manifest (tables by rows, views by presence and
    population), drop it, mark verified."""

    ui_color = "#fef7e0"
    template_fields = ("uploaded",)
    results = (Verification,)

    def __init__(self, *, uploaded: Any, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 1)
        super().__init__(**kwargs)
        self.uploaded = uploaded  # dump's UploadedBackup

    def run(self, request: BackupRequest, context: Any) -> Verification:
        from quantdbops.backup.nightly_steps import VerificationError, verify

        if request.dry_run:
            raise AirflowSkipException("dry run: nothing to verify")
        if not request.verify:
            raise AirflowSkipException("verify is off for this run: the backup stays 'uploaded', not 'verified'")
        s = self.settings(request)
        d: UploadedBackup = _needed(self.uploaded, "dump")
        try:
            v = verify(self.database, self.s3, d, s, say=self.log.info)
        except VerificationError as exc:
            raise ActionableFailure(
                f"{exc}\nThe backup is in S3 but marked failed in ops.backups.", what_to_do=f"{exc.advice}. Meanwhile "
                "the previous verified backup ('latest') is the one to restore") from exc
        self.log.info("Verification restore into %s equal to the manifest: %d relations (%s), %s table rows, in "
                      "%.1fs; scratch database dropped; latest now points at %s", v.scratch_db, v.relations,
                      v.compared, f"{v.rows:,}", v.seconds, v.s3_key)
        return v


class BackupRetentionOperator(BackupStep):
    """Delete backups older than retention_days, never the newest keep_verified verified ones (dry run: plan)."""

    ui_color = "#f1f3f4"
    template_fields = ("plan",)
    results = (RetentionOutcome,)

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.plan = plan  # preflight's BackupPlan

    def run(self, request: BackupRequest, context: Any) -> RetentionOutcome:
        from quantdbops.backup.nightly_steps import retention

        s = self.settings(request)
        plan: BackupPlan = _needed(self.plan, "preflight")
        r = retention(self.database, self.s3, s, dbname=plan.dbname, now=_when(context),
                      current=None if s.dry_run else plan.name)
        rows = [(stem, "DELETE" if not s.dry_run else "would delete", "older than "
                 f"{s.retention_days} days") for stem in r.deleted]
        rows += [(stem, "keep", why) for stem, why in sorted(r.kept.items(), reverse=True)]
        self.log.info("Retention%s:\n%s", " (DRY RUN)" if s.dry_run else "",
                      format_table(["backup", "action", "why"], rows or [("(none)", "", "")]))
        return r


class BackupReportOperator(BackupStep):
    """The last lines of the run: size, duration, MB/s, checksum, key, verified."""

    template_fields = ("plan", "uploaded", "verification", "retention")
    results = (BackupSummary,)

    def __init__(self, *, plan: Any, uploaded: Any, verification: Any, retention: Any, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.plan = plan
        self.uploaded = uploaded
        self.verification = verification
        self.retention = retention

    def run(self, request: BackupRequest, context: Any) -> BackupSummary:
        plan: BackupPlan = _needed(self.plan, "preflight")
        d: UploadedBackup | None = self.uploaded
        v: Verification | None = self.verification
        r: RetentionOutcome | None = self.retention
        deleted = r.deleted if r else []
        if plan.dry_run:
            self.log.info("DRY RUN summary:\n%s", format_table(["item", "value"], [
                ("would dump", f"{plan.dbname} (~{_mb(plan.db_size_bytes)})"),
                ("to", f"s3://{plan.bucket}/{plan.s3_key}"),
                ("retention would delete", ", ".join(deleted) or "nothing")]))
            return BackupSummary(dry_run=True, deleted=len(deleted))
        d = _needed(d, "dump")
        summary = BackupSummary(dry_run=False, size_bytes=d.size_bytes, seconds=round(d.dump_seconds, 3),
                                mb_per_s=round(d.mb_per_s, 2) if d.dump_seconds else None, sha256=d.sha256,
                                s3_key=d.s3_key, verified=bool(v and v.verified),
                                encryption=d.encryption.get("algorithm"), deleted=len(deleted))
        self.log.info("Backup %s:\n%s", plan.name, format_table(
            ["size", "duration (dump into the bucket)", "MB/s", "sha256", "key", "verified"],
            [(_mb(d.size_bytes), f"{d.dump_seconds:.1f}s", f"{summary.mb_per_s or 0:.1f}", d.sha256[:16] + "…",
              f"s3://{plan.bucket}/{d.s3_key}", "yes" if summary.verified else "no")]))
        return summary


# --- the restore DAG -------------------------------------------------------------------------------------
class RestoreStep(BackupStep):
    """A step of the restore DAG: the same connections and settings, the restore's request."""

    request_type = RestoreRequest
    nothing_done = "nothing was touched"


class ResolveRestoreOperator(RestoreStep):
    """Which dump (latest, a key, a local path) and its manifest; the target's existence and confirmation."""

    ui_color = "#e8f0fe"
    results = (RestorePlan,)

    def run(self, request: RestoreRequest, context: Any) -> RestorePlan:
        from quantdbops.backup.restore_steps import RestoreRefused, check_target, resolve

        s = self.settings(request)
        db = self.database
        try:
            resolved = resolve(self.s3, s, request.backup, request.source_database or db.dbname)
            exists = check_target(db, request.target_database, request.confirm_target)
        except RestoreRefused as exc:
            raise ActionableFailure(str(exc), what_to_do="nothing was touched; trigger again with the params the "
                                    "message asks for") from exc
        m = resolved.manifest
        plan = resolved.into(request.target_database, exists)
        self.log.info("Restore plan:\n%s", format_table(["item", "value"], [
            ("backup", f"{plan.source}: {plan.dump}"), ("taken at", m.get("taken_at")),
            ("size / sha256", f"{_mb(m['size_bytes'])} / {m['sha256']}"),
            ("versions", f"PostgreSQL {m.get('pg_version')}, TimescaleDB {m.get('tsdb_version') or '-'}"),
            ("verified", "yes" if m.get("verified") else "NO (never restored before)"),
            ("target", f"{plan.target} ({'EXISTS: safety backup first, then replaced' if exists else 'new'})")]))
        return plan


class _PlannedRestoreStep(RestoreStep):
    """A restore step after resolve: it receives resolve's ``RestorePlan``."""

    template_fields = ("plan",)

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def planned(self) -> RestorePlan:
        return _needed(self.plan, "resolve")


class FetchBackupOperator(_PlannedRestoreStep):
    """Read the dump through once and prove its size and SHA-256 against the manifest before anything is
    touched (nothing is kept: the restore fetches and proves it again on whichever worker it runs)."""

    ui_color = "#fce8e6"
    results = (DumpProof,)

    def run(self, request: RestoreRequest, context: Any) -> DumpProof:
        from quantdbops.backup.restore_steps import RestoreRefused, check

        try:
            f = check(self.s3, self.settings(request), self.planned(), say=self.log.info)
        except RestoreRefused as exc:
            raise ActionableFailure(str(exc), what_to_do=(
                "nothing was restored and the target is untouched; the object in S3 does not match its manifest: "
                "restore another backup (name it in the backup param) and find out what changed the bucket")) from exc
        self.log.info("Checksum OK: %s (%s, sha256 %s, read in %.1fs)", f.dump, _mb(f.size_bytes), f.sha256,
                      f.seconds)
        return f


class SafetyBackupOperator(_PlannedRestoreStep):
    """Dump the existing target into the bucket before it is replaced; skipped for a new target."""

    ui_color = "#e6f4ea"
    results = (SafetyBackup,)

    def run(self, request: RestoreRequest, context: Any) -> SafetyBackup:
        from quantdbops.backup.restore_steps import safety_backup

        plan = self.planned()
        if not plan.target_exists:
            raise AirflowSkipException(f"{plan.target} does not exist yet: nothing to save")
        return safety_backup(self.database, self.s3, self.settings(request), plan.target, say=self.log.info)


class RestoreDatabaseOperator(_PlannedRestoreStep):
    """Fetch and prove the dump on this worker, replace the target with it, then check it: tables by rows, views
    by presence and population, indexes and hypertables."""

    ui_color = "#fef7e0"
    results = (RestoreOutcome,)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)  # destructive: a person decides on a second attempt
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)

    def run(self, request: RestoreRequest, context: Any) -> RestoreOutcome:
        from quantdbops.backup.restore_steps import RestoreRefused, restore

        plan = self.planned()
        try:
            result = restore(self.database, self.s3, self.settings(request), plan.target, plan, say=self.log.info)
        except RestoreRefused as exc:
            raise ActionableFailure(str(exc), what_to_do="the target was not touched: restore another backup") from exc
        self.log.info("Restored %s into %s in %.1fs (%.1f MB/s):\n%s", plan.dump, plan.target, result.seconds,
                      plan.manifest["size_bytes"] / 1e6 / max(result.seconds, 1e-9),
                      format_table(["relation", "kind", "manifest", "restored", ""], result.lines))
        if not result.ok:
            raise ActionableFailure(
                f"{plan.target} was restored but differs from the manifest: {result.summary}",
                what_to_do=f"do not point applications at it; {result.advice}. The safety backup (if any) is named in "
                           "the safety_backup task's log: restore that one to go back")
        return result

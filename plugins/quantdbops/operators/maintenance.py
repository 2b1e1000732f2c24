"""Operators of the weekly maintenance DAG: one per step, plus prepare and the closing summary.

Each reads the run's ``MaintenanceRequest``, opens one autocommit connection when it runs (VACUUM and the
CONCURRENTLY commands refuse a transaction block), sets ``lock_timeout`` and ``statement_timeout`` for the
session, records every action in ``ops.maintenance_log`` as it happens and returns a ``StepResult`` (counts).
A table that cannot be locked in time is skipped for the rest of the step and recorded once; per-object
failures are recorded too and fail the run in ``summary``, after every step has had its turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from quantdbops.errors import ActionableFailure
from quantdbops.maintenance.params import MaintenanceRequest
from quantdbops.maintenance.results import MaintenanceSummary, StepResult
from quantdbops.operators.base import QuantOperator
from quantdbops.report import format_table

# The ops schema (and the tables) come from the migration's prepare task.
_SCHEMA_FIRST = ("run migrate_sqlite_to_postgres first (its prepare task applies the schema; a dry run does not), "
                 "then trigger this DAG again")


def _short(text: str | None, width: int = 80) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _rows_table(rows: Sequence[dict[str, Any]], title: str) -> str:
    from quantdbops.maintenance.decisions import headline

    return format_table(
        ["action", "object", "status", "before", "after", "seconds", "message"],
        [(r["action"], _short(r["object_name"], 60), r["status"], headline(r["action"], r["before"]),
          headline(r["action"], r["after"]), "" if r["duration_s"] is None else f"{float(r['duration_s']):.2f}",
          _short(r["message"])) for r in rows],
        title=title)


class MaintenanceStep(QuantOperator[MaintenanceRequest]):
    """One step: connection, timeouts, mode and record set up; ``work`` does the step's own part."""

    request_type = MaintenanceRequest
    results = (StepResult,)
    nothing_done = "nothing was done"
    ui_color = "#f3e8fd"
    # For a failure the step did not explain itself (the alert's "what to do").
    what_to_do = ("every maintenance step is safe to run again: check that the database answers, then clear "
                  "this task; the objects it finished are in ops.maintenance_log")
    mode_required: str | None = None  # "timescaledb" / "postgresql": the step is skipped in the other mode

    def work(self, session: Any, request: MaintenanceRequest) -> dict[str, Any]:
        """The step's own part, on the ``session`` (connection, mode, record, timeouts); returns its figures."""
        raise NotImplementedError

    def run(self, request: MaintenanceRequest, context: Any) -> StepResult:
        from quantdbops.maintenance.session import maintenance_session

        try:
            with maintenance_session(self.database, request, context["run_id"],
                                     application_name=f"quant-db-ops maintenance {self.task_id}") as s:
                if self.mode_required and s.mode.name != self.mode_required:
                    raise AirflowSkipException(f"{self.task_id} is for {self.mode_required} mode; this database "
                                               f"is {s.mode.describe()}")
                self.log.info("%s on %s: %s", self.task_id, s.mode.describe(), request.describe())
                figures = self.work(s, request)
                log = s.log
        except LookupError as exc:
            raise ActionableFailure(str(exc), what_to_do=_SCHEMA_FIRST) from exc
        if log.rows:
            self.log.info("%s", _rows_table(log.rows, f"{self.task_id}: {len(log.rows)} record(s)"))
        counts = log.counts()
        if counts.get("skipped"):
            self.log.warning("%d record(s) skipped (a table locked by another session, one record for all its "
                             "partitions, chunks or indexes; or not applicable): retried next week; see the "
                             "messages above.", counts["skipped"])
        if counts.get("failed"):
            self.log.error("%d object(s) failed: the run will be marked failed by summary after the other steps. "
                           "The message says what to do.", counts["failed"])
        return StepResult(step=self.task_id, figures=figures, records=dict(counts), dry_run=request.dry_run)


class PrepareMaintenanceOperator(MaintenanceStep):
    """Check params and schema; record the mode, the params and which measuring tools are installed."""

    def work(self, session: Any, request: MaintenanceRequest) -> dict[str, Any]:
        from quantdbops.io.pg import installed_extension

        tools = {ext: installed_extension(session.conn, ext) for ext in ("pgstattuple", "pg_stat_statements")}
        mode = session.mode
        bloat_by = "pgstattuple" if tools["pgstattuple"] else "estimate"
        session.log.record("run_start", None, "dry_run" if request.dry_run else "measured",
                           after={"mode": mode.name, "mode_description": mode.describe(), "params": request.as_dict(),
                                  "extensions": tools},
                           message=f"{mode.describe()}; bloat by {bloat_by}")
        for ext, version in tools.items():
            if not version:
                self.log.warning("Extension %s is not installed: %s", ext,
                                 "bloat is estimated from the catalog" if ext == "pgstattuple"
                                 else "no slow-query report")
        return {"mode": mode.name, "extensions": tools}


class VacuumAnalyzeOperator(MaintenanceStep):
    """VACUUM (ANALYZE) each partition / chunk with work to do, largest dead-tuple share first."""

    def work(self, session: Any, request: MaintenanceRequest) -> dict[str, Any]:
        from quantdbops.maintenance.vacuum import vacuum_tables

        return vacuum_tables(session.conn, request, session.mode, session.log, session.timeouts, self.log.info)


class MeasureBloatOperator(MaintenanceStep):
    """Table and index bloat (pgstattuple or the estimate); returns the indexes to rebuild."""

    def work(self, session: Any, request: MaintenanceRequest) -> dict[str, Any]:
        from quantdbops.maintenance.reindex import measure_bloat

        return measure_bloat(session.conn, request, session.mode, session.log, session.timeouts, self.log.info)


class ReindexBloatedOperator(MaintenanceStep):
    """Drop leftovers of interrupted concurrent reindexes, then REINDEX INDEX CONCURRENTLY the candidates."""

    template_fields = ("measured",)

    def __init__(self, *, measured: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.measured = measured  # measure_bloat's StepResult

    def work(self, session: Any, request: MaintenanceRequest) -> dict[str, Any]:
        from quantdbops.maintenance.reindex import measure_bloat, reindex_bloated

        if self.measured is not None:
            candidates = self.measured.figures["candidates"]
        else:
            self.log.warning("No measurement from measure_bloat (it failed or was skipped): measuring again")
            candidates = measure_bloat(session.conn, request, session.mode, session.log, session.timeouts,
                                       self.log.info)["candidates"]
        return reindex_bloated(session.conn, request, session.mode, session.log, session.timeouts, self.log.info,
                               candidates)


class TimescaleUpkeepOperator(MaintenanceStep):
    """TimescaleDB: compress old chunks, refresh continuous aggregates, report chunks, ratio and jobs."""

    mode_required = "timescaledb"

    def work(self, session: Any, request: MaintenanceRequest) -> dict[str, Any]:
        from quantdbops.maintenance import timescaledb_upkeep

        conn, mode, log, timeouts = session.conn, session.mode, session.log, session.timeouts
        compressed = timescaledb_upkeep.compress_old_chunks(conn, request, mode, log, timeouts, self.log.info)
        refreshed = timescaledb_upkeep.refresh_aggregates(conn, request, log, timeouts, self.log.info)
        chunks = timescaledb_upkeep.report_chunks(conn, request, mode, log, timeouts)
        self.log.info("%s", format_table(["hypertable", "chunks", "compressed", "uncompressed", "ratio"], chunks,
                                         title="Chunks and compression"))
        jobs = timescaledb_upkeep.report_jobs(conn, log)
        if jobs:
            self.log.warning("%s", format_table(["job", "procedure", "hypertable", "problem"], jobs,
                                                title="TimescaleDB jobs that failed or never ran"))
        return {"compression": compressed, "aggregates": refreshed, "hypertables": len(chunks),
                "problem_jobs": len(jobs)}


class PlainUpkeepOperator(MaintenanceStep):
    """Plain PostgreSQL: create the coming months' partitions, refresh the materialized views."""

    mode_required = "postgresql"

    def work(self, session: Any, request: MaintenanceRequest) -> dict[str, Any]:
        from quantdbops.maintenance import plain_upkeep

        partitions = plain_upkeep.create_partitions_ahead(session.conn, request, session.log, session.timeouts,
                                                   self.log.info)
        views = plain_upkeep.refresh_views(session.conn, request, session.log, session.timeouts, self.log.info)
        return {"partitions": partitions, "views": views}


class UsageReportOperator(MaintenanceStep):
    """Slow queries from pg_stat_statements; database and table sizes with growth since the last run."""

    def work(self, session: Any, request: MaintenanceRequest) -> dict[str, Any]:
        from quantdbops.maintenance import usage
        from quantdbops.maintenance.decisions import human_bytes

        queries = usage.slow_queries(session.conn, request, session.log)
        if queries:
            self.log.warning("%s", format_table(
                ["queryid", "calls", "mean ms", "max ms", "query"],
                [(q["queryid"], q["calls"], q["mean_ms"], q["max_ms"], _short(q["query"], 90)) for q in queries],
                title=f"Slowest statements (mean > {request.slow_query_min_ms:g} ms)"))
        sizes = usage.sizes(session.conn, request, session.mode, session.log, session.timeouts)
        self.log.info("%s", format_table(
            ["object", "size", "last run", "growth", "status"],
            [(o, human_bytes(s) if isinstance(s, int) else s, human_bytes(p) if isinstance(p, int) else "-",
              human_bytes(g) if isinstance(g, int) else "-", st) for o, s, p, g, st in sizes],
            title="Sizes and growth since the last run"))
        return {"slow_queries": len(queries), "sizes": len(sizes)}


class MaintenanceSummaryOperator(QuantOperator[MaintenanceRequest]):
    """The run's closing before/after table from ops.maintenance_log; fails if anything failed."""

    request_type = MaintenanceRequest
    results = (MaintenanceSummary,)
    nothing_done = "nothing was done"
    ui_color = "#fef7e0"

    def __init__(self, *, step_task_ids: Sequence[str], **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.step_task_ids = list(step_task_ids)  # whose failure fails the run (their states, not their results)

    def _failed_steps(self, context: Any) -> list[str]:
        states = context["ti"].get_task_states(dag_id=context["dag"].dag_id, task_ids=self.step_task_ids,
                                               run_ids=[context["run_id"]])
        run_states = states.get(context["run_id"], {})
        return sorted(t for t, s in run_states.items() if s in ("failed", "upstream_failed"))

    def run(self, request: MaintenanceRequest, context: Any) -> MaintenanceSummary:
        from quantdbops.maintenance.decisions import summarise_statuses
        from quantdbops.maintenance.record import MaintenanceLog, ops_schema_ready, run_rows

        run_id = context["run_id"]
        with self.database.connect(autocommit=True, application_name="quant-db-ops maintenance summary") as conn:
            if not ops_schema_ready(conn):
                raise ActionableFailure("ops.maintenance_log does not exist: nothing was maintained",
                                        what_to_do=_SCHEMA_FIRST)
            rows = run_rows(conn, run_id)
            counts = summarise_statuses([(r["action"], r["status"]) for r in rows])
            failed_rows = [r for r in rows if r["status"] == "failed"]
            failed_steps = self._failed_steps(context)
            MaintenanceLog(conn, run_id).record(
                "run_summary", None, "failed" if failed_rows or failed_steps else "measured",
                after={"counts": counts, "failed_steps": failed_steps},
                message=f"{len(rows)} records; {len(failed_rows)} failed; steps failed: {failed_steps or 'none'}")
        statuses = sorted({s for c in counts.values() for s in c})
        totals = {s: sum(c.get(s, 0) for c in counts.values()) for s in statuses}
        verdict = ", ".join(f"{n} {s}" for s, n in totals.items()) or "nothing to do"
        attention = [r for r in rows if r["status"] in ("failed", "skipped")]
        say = self.log.error if failed_rows or failed_steps else self.log.info
        say("Maintenance run %s: %s%s", run_id, "FAILED: " if failed_rows or failed_steps else "", verdict
            + (f"; steps failed: {', '.join(failed_steps)}" if failed_steps else ""))
        if attention:
            self.log.info("%s", _rows_table(attention, "Failed or skipped (a skipped table was locked by another "
                                                       "session: next week does it)"))
        self.log.info("%s", format_table(["action", *statuses],
                                         [(a, *[c.get(s, 0) for s in statuses]) for a, c in counts.items()],
                                         title="Records by action and status"))
        self.log.info("%d other records done or measured. Before/after of every object: SELECT action, object_name, "
                      "status, before, after, duration_s, message FROM ops.maintenance_log WHERE run_id = '%s' "
                      "ORDER BY id;", len(rows) - len(attention), run_id)
        if failed_rows or failed_steps:
            what = "; ".join(f"{r['action']} {r['object_name']}: {r['message']}" for r in failed_rows[:10])
            raise ActionableFailure(
                f"Maintenance finished with failures: steps {failed_steps or 'none'}; objects: {what or 'none'}. "
                "Every other object was maintained",
                what_to_do="read the step's log for the error; a statement_timeout means the object needs a longer "
                           "window (trigger again with a higher statement_timeout_min and only that table); an "
                           "error on REINDEX left no invalid index behind (it is cleaned up at once)")
        return MaintenanceSummary(records=len(rows), counts=counts)

"""Operators of the data-quality DAG: run one check (all requested regions), then report the run.

A check task records what it found and succeeds: whether the data is good enough is decided once, by
``QualityReportOperator``, which logs one summary table, the failing checks' sample rows, and fails the run
(without retries: a retry cannot fix data) when an error-level check found violations.

The column and table checks (``null_required``, ``ohlcv_rules``, ``freshness``) are the common-sql provider's
``SQLColumnCheckOperator`` / ``SQLTableCheckOperator``, one per table and region, through the two small
subclasses below: they run on the check task's connection and hand back the provider's per-check results
(``column_mapping[col][check]["result"/"success"]``, ``checks[name][...]``) instead of raising, so the task
can record them (and fetch sample rows of the failing ones) like every other check.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from airflow.providers.common.sql.operators.sql import SQLColumnCheckOperator, SQLTableCheckOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from quantdbops import CONN_POSTGRES, PLATFORM_TZ
from quantdbops.errors import ActionableFailure, bad_params
from quantdbops.report import format_table


def run_day(context: Any) -> date:
    """The day a run checks up to by default: its logical date (or, for asset-triggered runs, when it ran),
    in the platform's time zone."""
    import pendulum

    when = context.get("logical_date") or context["dag_run"].run_after
    return pendulum.instance(when).in_timezone(PLATFORM_TZ).date()


def quality_request(context: Any) -> Any:
    from quantdbops.quality.params import ParamError, QualityRequest

    try:
        return QualityRequest.from_params(context["params"], default_as_of=run_day(context))
    except ParamError as exc:
        raise bad_params(exc, nothing="nothing was checked") from exc


class _OnConnection:
    """What the provider's check operators use of their hook (``get_records``), on a given psycopg connection:
    all tables and regions of a check task share that connection (and a caller's open transaction)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def get_records(self, sql: str, parameters: Any = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            return cur.execute(sql, parameters).fetchall()


class _RecordingCheckMixin:
    """Run a provider check operator inside a check task and return its per-check outcomes.

    The provider's ``execute`` evaluates every check, stores ``result``/``success`` on each, then raises one
    AirflowException naming all failures; ``evaluate`` keeps the results and drops the exception (whether a
    failure fails the run is the report's decision, by severity). An aggregate over no rows (an empty region or
    window) is ``None``: it passes unless ``empty_passes`` is False (freshness: no data at all is stale).
    """

    connection: Any = None
    empty_passes: bool = True

    def get_db_hook(self) -> Any:
        return _OnConnection(self.connection) if self.connection is not None else super().get_db_hook()

    def _outcomes(self) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def evaluate(self, connection: Any = None) -> dict[str, dict[str, Any]]:
        """``{check: {"result": ..., "success": bool}}``; database errors propagate (a retry may help)."""
        from airflow.sdk.bases.operator import ExecutorSafeguard

        self.connection = connection
        # Called from the check task's execute: mark this operator as the one running, as the task runner does
        # for a task, so the SDK's guard against calling execute() outside a task does not warn per table.
        token = ExecutorSafeguard.tracker.set(self)
        try:
            self.execute({})
        except AirflowException:
            outcomes = self._outcomes()
            if not outcomes or any("success" not in v for v in outcomes.values()):
                raise  # not a failed check: the query itself went wrong
        finally:
            ExecutorSafeguard.tracker.reset(token)
        return self._outcomes()


class QualityColumnCheckOperator(_RecordingCheckMixin, SQLColumnCheckOperator):
    """``SQLColumnCheckOperator`` (null_check, min, max per column) that records instead of raising."""

    def __init__(self, *, empty_passes: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.empty_passes = empty_passes

    def _get_match(self, check_values: dict, record: Any, tolerance: Any = None) -> bool:
        if record is None:  # min/max over no rows (SUM for null_check: accept_none turns it into 0 anyway)
            return self.empty_passes
        return super()._get_match(check_values, record, tolerance)

    def _outcomes(self) -> dict[str, dict[str, Any]]:
        return {f"{col}.{name}": {"result": v.get("result"), "success": v.get("success")}
                for col, checks in self.column_mapping.items() for name, v in checks.items() if "success" in v}


class QualityTableCheckOperator(_RecordingCheckMixin, SQLTableCheckOperator):
    """``SQLTableCheckOperator`` (a boolean statement per row) that records instead of raising; a scope
    without rows passes (the provider's MIN over no rows is NULL, which it cannot read as a boolean)."""

    sql_check_template = """
    SELECT '{check_name}' AS check_name, COALESCE(MIN({check_name}), 1) AS check_result
    FROM (SELECT CASE WHEN {check_statement} THEN 1 ELSE 0 END AS {check_name}
          FROM {table} {partition_clause}) AS sq
    """

    def _outcomes(self) -> dict[str, dict[str, Any]]:
        return {name: {"result": v.get("result"), "success": v.get("success")}
                for name, v in self.checks.items() if "success" in v}


def _provider_cell(result: Any) -> str:
    """The provider's verdicts on one table and region, for the check task's log table."""
    if not result.provider_checks:
        return "-"
    failed = result.provider_failures
    return f"failed: {', '.join(failed)}" if failed else f"{len(result.provider_checks)} passed"


class QualityCheckOperator(BaseOperator):
    """Run one registered quality check on every requested region and record it in ops.quality_results."""

    ui_color = "#fef7e0"

    def __init__(self, *, check_name: str, postgres_conn_id: str = CONN_POSTGRES, **kwargs: Any) -> None:
        from quantdbops.quality.checks import check

        super().__init__(**kwargs)
        self.check = check(check_name)  # an unknown name fails when the DAG is parsed
        self.postgres_conn_id = postgres_conn_id

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from quantdbops.io.pg import connect
        from quantdbops.quality.runner import record, run_check

        request = quality_request(context)
        if self.check.name not in request.checks:
            raise AirflowSkipException(f"{self.check.name} was not selected in the params")
        with connect(self.postgres_conn_id, autocommit=True) as pg:
            results = run_check(pg, self.check.name, request)
            record(pg, context["run_id"], self.check.name, results)
        self.log.info("%s (%s, %s): %s\n%s", self.check.name, self.check.severity.value, self.check.description,
                      request.describe(), format_table(
                          ["table", "region", "violations", "seconds", "common-sql checks"],
                          [(r.table_name, r.region, r.violation_count, f"{r.seconds:.3f}", _provider_cell(r))
                           for r in results]))
        return [r.as_dict() for r in results]  # metadata only: the sample rows stay in the database


class QualityReportOperator(BaseOperator):
    """Log the run's summary table and failing samples; fail (no retries) on error-level violations."""

    ui_color = "#fce8e6"

    def __init__(self, *, postgres_conn_id: str = CONN_POSTGRES, **kwargs: Any) -> None:
        kwargs["retries"] = 0
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.postgres_conn_id = postgres_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from quantdbops.io.pg import connect
        from quantdbops.quality.runner import errors, failing_samples, load_results, summary_table

        request = quality_request(context)
        with connect(self.postgres_conn_id, autocommit=True) as pg:
            results = load_results(pg, context["run_id"])
        if not results:
            raise ActionableFailure("No check recorded a result for this run: the check tasks failed",
                                    what_to_do="read their logs (usually the database was unreachable), then "
                                               "clear the failed checks and this report to retry")
        self.log.info("Data quality, run %s: %s\n%s", context["run_id"], request.describe(), summary_table(results))
        for block in failing_samples(results):
            self.log.warning("%s", block)
        bad = errors(results)
        summary = {"results": len(results), "failed": sum(not r.passed for r in results), "errors": len(bad)}
        if bad:
            what = "; ".join(f"{r.check_name} {r.table_name} {r.region}: {r.violation_count:,}" for r in bad[:10])
            raise ActionableFailure(
                f"{len(bad)} error-level quality check(s) failed: {what}. The sample rows are above and in "
                f"ops.quality_results (run_id {context['run_id']})",
                what_to_do="the DAG's Docs tab says what to do per check; re-running cannot fix data: fix it "
                           "(or re-run the migration of that table and region), then trigger the DAG again")
        return summary

"""Operators of the data-quality DAG: run one check (all requested regions), then report the run.

A check task records what it found and succeeds: whether the data is good enough is decided once, by
``QualityReportOperator``, which logs one summary table, the failing checks' sample rows, and fails the run
(without retries: a retry cannot fix data) when an error-level check found violations.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from quantdbops import CONN_POSTGRES, PLATFORM_TZ
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
        raise AirflowFailException(f"Bad params: {exc}. Nothing was checked; trigger again with valid params "
                                   "(the trigger form lists the allowed values).") from exc


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
                          ["table", "region", "violations", "seconds"],
                          [(r.table_name, r.region, r.violation_count, f"{r.seconds:.3f}") for r in results]))
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
            raise AirflowFailException("No check recorded a result for this run: the check tasks failed (see "
                                       "their logs: usually the database was unreachable). Clear them to retry.")
        self.log.info("Data quality, run %s: %s\n%s", context["run_id"], request.describe(), summary_table(results))
        for block in failing_samples(results):
            self.log.warning("%s", block)
        bad = errors(results)
        summary = {"results": len(results), "failed": sum(not r.passed for r in results), "errors": len(bad)}
        if bad:
            what = "; ".join(f"{r.check_name} {r.table_name} {r.region}: {r.violation_count:,}" for r in bad[:10])
            raise AirflowFailException(
                f"{len(bad)} error-level quality check(s) failed: {what}. The sample rows are above and in "
                f"ops.quality_results (run_id {context['run_id']}); the DAG's Docs tab says what to do per check. "
                "Re-running cannot fix data: fix it, then trigger the DAG again.")
        return summary

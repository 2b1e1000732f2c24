"""Operators of the data-quality DAG: run one check (all requested regions), then report the run.

A check task runs its check's set-based SQL (``quantdbops.quality``: one statement per table, every region at
once), records what it found and succeeds: whether the data is good enough is decided once, by
``QualityReportOperator``, which logs one summary table, the failing checks' sample rows, and fails the run
(without retries: a retry cannot fix data) when an error-level check found violations.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from quantdbops.errors import ActionableFailure
from quantdbops.operators.base import QuantOperator
from quantdbops.quality.params import QualityRequest
from quantdbops.quality.results import CheckOutcome, QualityVerdict


class QualityStep(QuantOperator[QualityRequest]):
    """A step of the data-quality DAG: the target database and the run's ``QualityRequest``."""

    request_type = QualityRequest
    nothing_done = "nothing was checked"


class QualityCheckOperator(QualityStep):
    """Run one registered quality check on every requested region and record it in ops.quality_results."""

    ui_color = "#fef7e0"
    results = (CheckOutcome,)

    def __init__(self, *, check_name: str, **kwargs: Any) -> None:
        from quantdbops.quality.checks import check

        super().__init__(**kwargs)
        self.check = check(check_name)  # an unknown name fails when the DAG is parsed

    def run(self, request: QualityRequest, context: Any) -> CheckOutcome:
        from quantdbops.quality.report import check_table, record
        from quantdbops.quality.runner import run_check

        if self.check.name not in request.checks:
            raise AirflowSkipException(f"{self.check.name} was not selected in the params")
        with self.database.connect(autocommit=True) as pg:
            results = run_check(pg, self.check.name, request)
            record(pg, context["run_id"], self.check.name, results)
        found = sum(r.violation_count for r in results)
        self.log.info("%s (%s): %s\n%s violation(s) in %.2f s; run: %s\n%s", self.check.name,
                      self.check.severity.value, self.check.define(request), f"{found:,}",
                      sum({r.table_name: r.seconds for r in results}.values()), request.describe(),
                      check_table(results))
        # The figures only: the sample rows stay in the database.
        return CheckOutcome(check=self.check.name, violations=found, results=len(results),
                            failed=sum(not r.passed for r in results))


class QualityReportOperator(QualityStep):
    """Log the run's summary table and failing samples; fail (no retries) on error-level violations."""

    ui_color = "#fce8e6"
    results = (QualityVerdict,)

    def __init__(self, **kwargs: Any) -> None:
        kwargs["retries"] = 0
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)

    def run(self, request: QualityRequest, context: Any) -> QualityVerdict:
        from quantdbops.quality.report import (
            errors,
            failing_samples,
            load_results,
            passed_line,
            summary_table,
            verdict,
        )

        with self.database.connect(autocommit=True) as pg:
            results = load_results(pg, context["run_id"])
        if not results:
            raise ActionableFailure("No check recorded a result for this run: the check tasks failed",
                                    what_to_do="read their logs (usually the database was unreachable), then "
                                               "clear the failed checks and this report to retry")
        found = [r for r in results if not r.passed]
        self.log.info("Data quality, run %s (%s): %s%s", context["run_id"], request.describe(), verdict(results),
                      "\n" + summary_table(results) if found else "")
        for block in failing_samples(results):
            self.log.warning("%s", block)
        self.log.info("%s", passed_line(results, context["run_id"]))
        bad = errors(results)
        summary = QualityVerdict(results=len(results), failed=sum(not r.passed for r in results), errors=len(bad))
        if bad:
            what = "; ".join(f"{r.check_name} {r.table_name} {r.region}: {r.violation_count:,}" for r in bad[:10])
            raise ActionableFailure(
                f"{len(bad)} error-level quality check(s) failed: {what}. The sample rows are above and in "
                f"ops.quality_results (run_id {context['run_id']})",
                what_to_do="the DAG's Docs tab says what to do per check; re-running cannot fix data: fix it "
                           "(or re-run the migration of that table and region), then trigger the DAG again")
        return summary

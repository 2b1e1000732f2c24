"""What each step of the data-quality DAG hands on (through XCom, as these classes); the checks' own rows are
in ``ops.quality_results`` (``quality.report``).

Import-light on purpose: the DAG file imports the operators, which name these classes, at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass

from quantdbops.results import XComResult


@dataclass(frozen=True)
class CheckOutcome(XComResult):
    """One check over every requested region: its violations and the results it recorded (no sample rows)."""

    check: str
    violations: int
    results: int
    failed: int


@dataclass(frozen=True)
class QualityVerdict(XComResult):
    """The run's results: how many, how many found something, how many of those are errors."""

    results: int
    failed: int
    errors: int


__all__ = ["CheckOutcome", "QualityVerdict"]

"""What each step of the maintenance DAG hands to the next (through XCom, as these classes).

Import-light on purpose: the DAG file imports the operators, which name these classes, at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quantdbops.results import XComResult


@dataclass(frozen=True)
class StepResult(XComResult):
    """What one maintenance step did: its figures, and its records in ops.maintenance_log by status."""

    step: str
    figures: dict[str, Any] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False


@dataclass(frozen=True)
class MaintenanceSummary(XComResult):
    """The run's records by action and status."""

    records: int
    counts: dict[str, dict[str, int]]


__all__ = ["MaintenanceSummary", "StepResult"]

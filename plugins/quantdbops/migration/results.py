"""What each step of the migration DAG hands to the next (through XCom, as these classes).

Import-light on purpose: the DAG file imports the operators, which name these classes, at parse time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quantdbops.results import XComResult


@dataclass(frozen=True)
class PreparedMigration(XComResult):
    """What prepare found: the source file and its tables, the target and its mode, the previous run."""

    source_path: str
    source: dict[str, Any]
    target: str
    previous_run: str | None
    source_tables: dict[str, int]
    not_migrated: dict[str, str]
    extra_columns: dict[str, list[str]]
    mode: str
    schema: dict[str, Any]
    request: str


@dataclass
class SliceStats:
    """Counts of one region slice: every source row is either loaded or rejected."""

    source_rows: int = 0
    loaded: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> rows

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())


@dataclass
class TableLoadResult(XComResult):
    """What a table load did: per region slice, the source rows, those loaded and those rejected by reason."""

    table: str
    run_id: str
    dry_run: bool
    regions: dict[str, SliceStats]
    seconds: float
    mode: str
    unknown_columns: list[str] = field(default_factory=list)

    @property
    def source_rows(self) -> int:
        return sum(s.source_rows for s in self.regions.values())

    @property
    def loaded(self) -> int:
        return sum(s.loaded for s in self.regions.values())

    @property
    def rejected(self) -> Counter:
        total: Counter = Counter()
        for s in self.regions.values():
            total.update(s.rejected)
        return total

    @property
    def rows_per_sec(self) -> float:
        return self.source_rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def balances(self) -> bool:
        """Every source row was loaded or rejected."""
        return self.source_rows == self.loaded + sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table, "run_id": self.run_id, "dry_run": self.dry_run, "mode": self.mode,
            "source_rows": self.source_rows, "loaded": self.loaded,
            "rejected": dict(self.rejected), "seconds": round(self.seconds, 3),
            "rows_per_sec": round(self.rows_per_sec), "unknown_columns": self.unknown_columns,
            "regions": {r: {"source_rows": s.source_rows, "loaded": s.loaded, "rejected": dict(s.rejected)}
                        for r, s in sorted(self.regions.items())},
        }

    def serialize(self) -> dict[str, Any]:
        return self.as_dict()

    @classmethod
    def deserialize(cls, data: Mapping[str, Any], version: int) -> TableLoadResult:
        regions = {r: SliceStats(s["source_rows"], s["loaded"], Counter(s["rejected"]))
                   for r, s in data["regions"].items()}
        return cls(table=data["table"], run_id=data["run_id"], dry_run=data["dry_run"], regions=regions,
                   seconds=data["seconds"], mode=data["mode"], unknown_columns=list(data["unknown_columns"]))


@dataclass
class PruneResult(XComResult):
    """Tickers of the target the source does not write: deleted, or kept because other rows reference them."""

    deleted: list[tuple[str, str]] = field(default_factory=list)
    kept: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (ticker, region) -> referencing tables
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"deleted": [list(k) for k in self.deleted], "dry_run": self.dry_run,
                "kept": [{"ticker": k[0], "region": k[1], "referenced_by": v} for k, v in sorted(self.kept.items())]}

    def serialize(self) -> dict[str, Any]:
        return self.as_dict()

    @classmethod
    def deserialize(cls, data: Mapping[str, Any], version: int) -> PruneResult:
        return cls(deleted=[(t, r) for t, r in data["deleted"]], dry_run=data["dry_run"],
                   kept={(k["ticker"], k["region"]): list(k["referenced_by"]) for k in data["kept"]})


@dataclass
class AggregateRefresh(XComResult):
    """One aggregate refreshed: how, how long, and the rows it holds afterwards."""

    view: str
    kind: str
    how: str
    seconds: float
    rows: int


@dataclass(frozen=True)
class ValidationSummary(XComResult):
    """How many checks ran and failed (a dry run checks only that every source row balances)."""

    checks: int = 0
    failed: int = 0
    dry_run: bool = False
    tables: int = 0


@dataclass(frozen=True)
class SloOutcome(XComResult):
    """The status of every query of the SLO suite (ok, warn, critical, or why it did not run)."""

    statuses: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MigrationSummary(XComResult):
    """The run in figures: tables loaded, source rows, source tables not migrated."""

    tables: int
    source_rows: int
    not_migrated: list[str]
    dry_run: bool


__all__ = [
    "AggregateRefresh", "MigrationSummary", "PreparedMigration", "PruneResult", "SliceStats", "SloOutcome",
    "TableLoadResult", "ValidationSummary",
]

"""The maintenance DAG's params: JSON schema for the trigger form, and their strict reading in tasks.

Scheduled runs take the defaults (the full weekly maintenance); a manual run can ask for a dry run, a
subset of the registry's tables and other thresholds. Identifiers only ever come from the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from quantdbops.paramcheck import ParamError
from quantdbops.registry import TABLES

TABLE_NAMES: tuple[str, ...] = tuple(t.name for t in TABLES)
MAX_STATEMENT_MINUTES = 120  # below the tasks' execution_timeout (3 h): the database gives up first


def maintenance_params() -> dict[str, Any]:
    """Param objects of the trigger form (imported by the DAG file; built without any I/O)."""
    from airflow.sdk import Param

    return {
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Measure and report what would be done (vacuum order, indexes to rebuild, "
                                     "chunks to compress, partitions to create); change nothing but the log."),
        "tables": Param(list(TABLE_NAMES), type="array", items={"type": "string", "enum": list(TABLE_NAMES)},
                        minItems=1, uniqueItems=True, title="Tables",
                        description="Registry tables to maintain (their partitions or chunks included)."),
        "bloat_threshold_pct": Param(30, type="number", minimum=5, maximum=95, title="Index bloat threshold (%)",
                                     description="An index is rebuilt only above this share of wasted space."),
        "min_index_kb": Param(1024, type="integer", minimum=0, title="Smallest index to rebuild (kB)",
                              description="Smaller indexes are measured but never rebuilt (a tiny index is "
                                          "always 'bloated' and costs nothing)."),
        "lock_timeout_s": Param(5, type="integer", minimum=1, maximum=300, title="Lock timeout (s)",
                                description="A table not lockable within this time is skipped and reported."),
        "statement_timeout_min": Param(60, type="integer", minimum=1, maximum=MAX_STATEMENT_MINUTES,
                                       title="Statement timeout (min)",
                                       description="Longest single VACUUM / REINDEX / compression statement."),
        "slow_query_min_ms": Param(1000, type="number", minimum=0, title="Slow query threshold (ms)",
                                   description="pg_stat_statements entries slower than this on average."),
        "slow_query_top_n": Param(20, type="integer", minimum=1, maximum=200, title="Slow queries to report"),
        "months_ahead": Param(3, type="integer", minimum=1, maximum=24, title="Partitions ahead (months)",
                              description="Plain PostgreSQL: partitions created ahead of today."),
    }


@dataclass(frozen=True)
class MaintenanceRequest:
    """What a run was asked to do, checked."""

    dry_run: bool = False
    tables: tuple[str, ...] = TABLE_NAMES
    bloat_threshold_pct: float = 30.0
    min_index_kb: int = 1024
    lock_timeout_s: int = 5
    statement_timeout_min: int = 60
    slow_query_min_ms: float = 1000.0
    slow_query_top_n: int = 20
    months_ahead: int = 3

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> MaintenanceRequest:
        return cls.from_params(context["params"])

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> MaintenanceRequest:
        tables = params.get("tables") or list(TABLE_NAMES)
        if isinstance(tables, str):
            tables = [tables]
        unknown = [t for t in tables if t not in TABLE_NAMES]
        if unknown:
            raise ParamError(f"unknown tables: {', '.join(map(str, unknown))}; allowed: {', '.join(TABLE_NAMES)}")
        dry_run = params.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise ParamError(f"dry_run must be true or false, got {dry_run!r}")
        request = cls(
            dry_run=dry_run,
            tables=tuple(t for t in TABLE_NAMES if t in set(tables)),  # registry order, no duplicates
            bloat_threshold_pct=_number(params, "bloat_threshold_pct", 30, 5, 95),
            min_index_kb=int(_number(params, "min_index_kb", 1024, 0, None)),
            lock_timeout_s=int(_number(params, "lock_timeout_s", 5, 1, 300)),
            statement_timeout_min=int(_number(params, "statement_timeout_min", 60, 1, MAX_STATEMENT_MINUTES)),
            slow_query_min_ms=_number(params, "slow_query_min_ms", 1000, 0, None),
            slow_query_top_n=int(_number(params, "slow_query_top_n", 20, 1, 200)),
            months_ahead=int(_number(params, "months_ahead", 3, 1, 24)),
        )
        return request

    def describe(self) -> str:
        tables = "all tables" if self.tables == TABLE_NAMES else ", ".join(self.tables)
        return (f"{'DRY RUN, ' if self.dry_run else ''}{tables}; rebuild indexes over {self.bloat_threshold_pct:g}% "
                f"bloat and {self.min_index_kb} kB; lock_timeout {self.lock_timeout_s}s, statement_timeout "
                f"{self.statement_timeout_min} min")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tables"] = list(self.tables)
        return out


def _number(params: Mapping[str, Any], name: str, default: float, lo: float | None, hi: float | None) -> float:
    value = params.get(name, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(f"{name} must be a number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ParamError(f"{name} must be between {lo} and {hi if hi is not None else 'any'}, got {value}")
    return float(value)

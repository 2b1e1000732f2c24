"""The registry of data-quality checks: name, severity, SQL file, the tables it reads, its threshold.

Plain data, no I/O: the DAG file builds one task per check from it at parse time, the params' enum is its
list of names, the runner composes each check's SQL file with the tables named here (identifiers only ever
come from the table registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from quantdbops.registry import OHLCV_DATA, TABLES, Table


class Severity(StrEnum):
    """An error fails the run (no retries: a retry cannot fix data); a warning is recorded and logged."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class QualityCheck:
    """One check: what it finds, how bad that is, which SQL file finds it, on which tables."""

    name: str
    severity: Severity
    sql_file: str  # under include/sql/quality/
    tables: tuple[Table, ...]
    threshold: str | None  # the QualityRequest attribute the check compares against (None: any row fails)
    description: str

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)


def _serial(t: Table, col: str) -> bool:
    return t.column(col).kind in ("serial", "bigserial")


def natural_key_tables() -> tuple[Table, ...]:
    """Tables with a natural key (not an identity value, which is unique by construction)."""
    return tuple(t for t in TABLES if not any(_serial(t, c) for c in t.key) and t.key != (t.surrogate,))


def required_column_tables() -> tuple[Table, ...]:
    return tuple(t for t in TABLES if t.required_columns)


def ticker_column(t: Table) -> str | None:
    """The target column naming a row's (ticker, region), if the table has one."""
    if t.name == "tickers":
        return None
    if t.ticker_column and t.ticker_column in t.column_names:
        return t.ticker_column
    return "ticker" if "ticker" in t.column_names and t.has_region else None


def ticker_tables() -> tuple[Table, ...]:
    return tuple(t for t in TABLES if ticker_column(t))


CHECKS: tuple[QualityCheck, ...] = (
    QualityCheck("missing_dates", Severity.WARNING, "find_missing_dates.sql", (OHLCV_DATA,), "gap_threshold_days",
                 "gaps longer than the threshold (calendar days) between consecutive daily bars of a ticker"),
    QualityCheck("duplicates", Severity.ERROR, "find_duplicate_keys.sql", natural_key_tables(), None,
                 "rows sharing a natural key, also when spelled differently (ticker case/space, timeframe)"),
    QualityCheck("price_anomalies", Severity.WARNING, "find_price_anomalies.sql", (OHLCV_DATA,), "z_threshold",
                 "daily returns with |z| above the threshold within their ticker"),
    QualityCheck("volume_anomalies", Severity.WARNING, "find_volume_anomalies.sql", (OHLCV_DATA,), "z_threshold",
                 "daily volumes with |z| above the threshold within their ticker"),
    QualityCheck("null_required", Severity.ERROR, "find_null_required.sql", required_column_tables(), None,
                 "NULLs in columns the registry marks required"),
    QualityCheck("ohlcv_rules", Severity.ERROR, "find_ohlcv_violations.sql", (OHLCV_DATA,), None,
                 "high >= max(open, close), low <= min(open, close), prices > 0, volume >= 0"),
    QualityCheck("freshness", Severity.ERROR, "find_stale_regions.sql", (OHLCV_DATA,), "max_age_days",
                 "the newest bar of a region is older than the allowed age"),
    QualityCheck("referential", Severity.ERROR, "find_orphan_tickers.sql", ticker_tables(), None,
                 "rows whose ticker is not in tickers"),
)
BY_NAME: dict[str, QualityCheck] = {c.name: c for c in CHECKS}
CHECK_NAMES: tuple[str, ...] = tuple(BY_NAME)


def check(name: str) -> QualityCheck:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown quality check {name!r}; known: {', '.join(CHECK_NAMES)}") from None

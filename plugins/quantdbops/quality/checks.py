"""The registry of data-quality checks: name, severity, definition, SQL file, the tables it reads, threshold.

Plain data, no I/O: the DAG file builds one task per check from it at parse time, the params' enum is its
list of names, ``compose`` fills each check's SQL file with the tables named here (identifiers only ever come
from the table registry). Each check's definition is one sentence; its task logs it with the run's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from quantdbops.quality.rules import natural_key_tables, reference_tables, required_column_tables, rule_tables
from quantdbops.registry import OHLCV_DATA, Table

# The params a definition names, as the Docs tab writes them.
DEFINITION_PARAMS = ("gap_threshold_days", "z_threshold", "max_age_days")


class Severity(StrEnum):
    """An error fails the run (no retries: a retry cannot fix data); a warning is recorded and logged."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class QualityCheck:
    """One check: what it finds (one sentence), how bad that is, which SQL file finds it, on which tables."""

    name: str
    severity: Severity
    sql_file: str  # under include/sql/quality/
    tables: tuple[Table, ...]
    threshold: str | None  # the QualityRequest attribute the check compares against (None: any row fails)
    definition: str  # one sentence; {gap_threshold_days}, {z_threshold}, {max_age_days} are the params

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    def define(self, values: Any = None) -> str:
        """The definition with the run's values (an object with the params as attributes, e.g. the request), or
        with the params' names in backticks (the Docs tab's wording) when there are none."""
        if values is None:
            return self.definition.format(**{p: f"`{p}`" for p in DEFINITION_PARAMS})
        return self.definition.format(**{p: f"{getattr(values, p):g}" for p in DEFINITION_PARAMS})


CHECKS: tuple[QualityCheck, ...] = (
    QualityCheck("missing_dates", Severity.WARNING, "find_missing_dates.sql", (OHLCV_DATA,), "gap_threshold_days",
                 "A gap is two consecutive 'D' bars of a ticker more than {gap_threshold_days} calendar days "
                 "apart."),
    QualityCheck("duplicates", Severity.ERROR, "find_duplicate_keys.sql", natural_key_tables(), None,
                 "A duplicate is two or more rows of a table with the same natural key after normalising its "
                 "spelling (timeframe '1d'/'daily' = 'D', ticker case and surrounding spaces)."),
    QualityCheck("price_anomalies", Severity.WARNING, "find_price_anomalies.sql", (OHLCV_DATA,), "z_threshold",
                 "A price anomaly is a daily close-to-close return whose |z| exceeds {z_threshold}, z measured "
                 "against the mean and sample standard deviation of that ticker's returns over the checked "
                 "window."),
    QualityCheck("volume_anomalies", Severity.WARNING, "find_volume_anomalies.sql", (OHLCV_DATA,), "z_threshold",
                 "A volume anomaly is a daily volume whose |z| exceeds {z_threshold}, z measured against the mean "
                 "and sample standard deviation of that ticker's volumes over the checked window."),
    QualityCheck("null_required", Severity.ERROR, "find_rule_violations.sql", required_column_tables(), None,
                 "A missing value is a NULL in a column the registry marks required."),
    QualityCheck("ohlcv_rules", Severity.ERROR, "find_rule_violations.sql", rule_tables("ohlcv_rules"), None,
                 "A broken bar is an ohlcv_data row that breaks a rule the registry declares for it: a price "
                 "<= 0, high below open, close or low, low above open or close, volume < 0, or a region or "
                 "timeframe outside its vocabulary."),
    QualityCheck("row_rules", Severity.ERROR, "find_rule_violations.sql", rule_tables("row_rules"), None,
                 "A broken row is a row of any other table that breaks a rule the registry declares for it (a "
                 "vocabulary, a positive amount, ...), the same rules the loader quarantines a source row for."),
    QualityCheck("freshness", Severity.ERROR, "find_stale_regions.sql", (OHLCV_DATA,), "max_age_days",
                 "A stale region is one whose newest bar up to the checked day is more than {max_age_days} days "
                 "old, or which has no bar at all."),
    QualityCheck("referential", Severity.ERROR, "find_orphan_tickers.sql", reference_tables(), None,
                 "An orphan is a row naming a ticker that is not in tickers (with the row's region where it "
                 "has one)."),
)
BY_NAME: dict[str, QualityCheck] = {c.name: c for c in CHECKS}
CHECK_NAMES: tuple[str, ...] = tuple(BY_NAME)


def check(name: str) -> QualityCheck:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown quality check {name!r}; known: {', '.join(CHECK_NAMES)}") from None

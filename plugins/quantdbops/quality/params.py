"""The quality DAG's trigger-form params (JSON schema) and their strict reading in tasks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from quantdbops import PLATFORM_TZ, REGIONS
from quantdbops.paramcheck import ParamError, choice_list
from quantdbops.quality.checks import CHECK_NAMES

DEFAULTS: dict[str, Any] = {
    "z_threshold": 3.0, "gap_threshold_days": 3, "lookback_days": 30, "max_age_days": 7, "sample_size": 10,
}


def run_day(context: Mapping[str, Any]) -> date:
    """The day a run checks up to by default: its logical date (or, for asset-triggered runs, when it ran),
    in the platform's time zone."""
    import pendulum

    when = context.get("logical_date") or context["dag_run"].run_after
    return pendulum.instance(when).in_timezone(PLATFORM_TZ).date()


def quality_params() -> dict[str, Any]:
    """Param objects of the trigger form (built without I/O at parse time)."""
    from airflow.sdk import Param

    return {
        "regions": Param(list(REGIONS), type="array", items={"type": "string", "enum": list(REGIONS)},
                         minItems=1, uniqueItems=True, title="Regions",
                         description="Markets to check. Market-wide tables are checked whatever is picked."),
        "checks": Param(list(CHECK_NAMES), type="array", items={"type": "string", "enum": list(CHECK_NAMES)},
                        minItems=1, uniqueItems=True, title="Checks", description="Checks to run."),
        "z_threshold": Param(DEFAULTS["z_threshold"], type="number", exclusiveMinimum=0, title="z-score threshold",
                             description="price/volume anomalies: |z| above this is flagged (default 3.0)."),
        "gap_threshold_days": Param(DEFAULTS["gap_threshold_days"], type="integer", minimum=1,
                                    title="Gap threshold (days)",
                                    description="missing_dates: calendar days between two bars above this."),
        "lookback_days": Param(DEFAULTS["lookback_days"], type="integer", minimum=0, title="Look-back (days)",
                               description="Check rows dated as_of - N .. as_of; 0 = the whole history up to as_of."),
        "max_age_days": Param(DEFAULTS["max_age_days"], type="integer", minimum=0, title="Max data age (days)",
                              description="freshness: the newest bar of a region may be this old (default 7)."),
        "as_of": Param(None, type=["null", "string"], format="date", title="As of",
                       description="The day the run checks up to; empty = the run's logical date (Seoul)."),
        "sample_size": Param(DEFAULTS["sample_size"], type="integer", minimum=0, maximum=100,
                             title="Sample rows", description="Failing rows kept per result (JSON)."),
    }


def _int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParamError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class QualityRequest:
    """What a run checks, validated. The window is [window_start, window_stop) in dates."""

    regions: tuple[str, ...]
    checks: tuple[str, ...]
    z_threshold: float
    gap_threshold_days: int
    lookback_days: int
    max_age_days: int
    as_of: date
    sample_size: int

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> QualityRequest:
        """The run's params; ``as_of`` defaults to the run's day (``run_day``)."""
        return cls.from_params(context["params"], default_as_of=run_day(context))

    @classmethod
    def from_params(cls, params: Mapping[str, Any], default_as_of: date) -> QualityRequest:
        p = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
        z = p["z_threshold"]
        if isinstance(z, bool) or not isinstance(z, (int, float)) or z <= 0:
            raise ParamError(f"z_threshold must be a number > 0, got {z!r}")
        as_of = p.get("as_of") or default_as_of
        if not isinstance(as_of, date):
            try:
                as_of = date.fromisoformat(str(as_of))
            except ValueError:
                raise ParamError(f"as_of must be a date YYYY-MM-DD, got {as_of!r}") from None
        return cls(
            regions=choice_list(p.get("regions", list(REGIONS)), REGIONS, "regions"),
            checks=choice_list(p.get("checks", list(CHECK_NAMES)), CHECK_NAMES, "checks"),
            z_threshold=float(z),
            gap_threshold_days=_int(p["gap_threshold_days"], "gap_threshold_days", 1),
            lookback_days=_int(p["lookback_days"], "lookback_days", 0),
            max_age_days=_int(p["max_age_days"], "max_age_days", 0),
            as_of=as_of,
            sample_size=min(_int(p["sample_size"], "sample_size", 0), 100),
        )

    @property
    def windowed(self) -> bool:
        """False for the whole history (nothing lies before it)."""
        return self.lookback_days > 0

    @property
    def window_start(self) -> date:
        return self.as_of - timedelta(days=self.lookback_days) if self.windowed else date.min

    @property
    def window_stop(self) -> date:
        """Exclusive end: the day after as_of (the whole history is the history up to as_of too)."""
        return self.as_of + timedelta(days=1)

    def sql_params(self) -> dict[str, Any]:
        """The bind parameters of every check's SQL (each file uses those it needs)."""
        return {
            "regions": list(self.regions), "windowed": self.windowed, "window_start": self.window_start,
            "window_stop": self.window_stop, "as_of": self.as_of, "z_threshold": self.z_threshold,
            "gap_days": self.gap_threshold_days, "max_age_days": self.max_age_days,
            "sample_limit": max(self.sample_size, 1),
        }

    def threshold(self, name: str | None) -> float | None:
        return None if name is None else float(getattr(self, name))

    def describe(self) -> str:
        window = f"whole history to {self.as_of}" if self.lookback_days == 0 else f"{self.window_start}..{self.as_of}"
        return (f"checks {','.join(self.checks)}; regions {','.join(self.regions)}; as of {self.as_of} "
                f"({window}); z > {self.z_threshold}, gap > {self.gap_threshold_days} d, "
                f"age > {self.max_age_days} d")

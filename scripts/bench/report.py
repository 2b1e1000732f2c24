"""Results of the load benchmark: per-method medians and rates, the goal lines, the JSON file."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

OURS = "ours"
PGLOADER = "pgloader"
RAW_COPY = "raw_copy"
RAW_COPY_INDEXES_AFTER = "raw_copy_indexes_after"

# (ratio name, method key, goal): ours' rate divided by the method's rate must reach the goal (issue 16:
# 3x pgloader and 0.8 of a raw COPY, on every shape of data).
RATE_GOALS: tuple[tuple[str, str, float], ...] = (
    ("ours / pgloader", PGLOADER, 3.0),
    ("ours / raw COPY", RAW_COPY, 0.80),
    ("ours / raw COPY, indexes built after", RAW_COPY_INDEXES_AFTER, 0.80),
)
PER_MILLION = 1_000_000
# The whole DAG run including validation must take under twice the load time: validation < load.
VALIDATION_GOAL = 1.0
# Cores that other processes kept busy during the timed runs beyond which the figures are called noisy.
BUSY_CORES = 0.25


@dataclass
class Leg:
    """One method: the seconds of each run and whether its result is valid."""

    key: str
    label: str
    rows: int = 0
    seconds: list[float] = field(default_factory=list)
    status: str = "ok"  # ok | invalid (wrong result) | failed (error) | skipped (not run) | not-applicable
    note: str = ""
    other_cores: list[float] = field(default_factory=list)  # other processes' load during each run
    # CPU seconds of each run: this script's processes (producers, pgloader), the server's (postmaster tree)
    client_cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    wrong_runs: list[str] = field(default_factory=list)  # runs whose result was wrong: not counted

    def settle(self) -> None:
        """After the last round: a method whose every run went wrong is invalid; one with valid runs keeps
        their median, and its note says which runs were left out and why (pgloader has crashed in one run of
        twelve, exit 1, while the others loaded every row)."""
        if not self.wrong_runs:
            return
        if not self.seconds:
            self.status, self.note = "invalid", "; ".join(self.wrong_runs)
            return
        self.note = (f"{len(self.wrong_runs)} of {len(self.wrong_runs) + len(self.seconds)} runs went wrong (not "
                     f"counted; the median is of the {len(self.seconds)} valid ones): " + "; ".join(self.wrong_runs))

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def rate(self) -> float | None:
        """Rows per second of the median run; None unless the result was verified."""
        med = self.median
        return self.rows / med if med and self.status == "ok" else None

    def cpu_per_million(self, side: str) -> float | None:
        """Median CPU seconds per 1M rows of one side: 'client' (producers, pgloader) or 'server'."""
        values = self.client_cpu if side == "client" else self.server_cpu
        return statistics.median(values) * PER_MILLION / self.rows if values and self.rows else None


@dataclass
class Validation:
    """Seconds of each validation run after our load, and the checks that failed."""

    seconds: list[float] = field(default_factory=list)
    checks: int = 0
    failed: list[str] = field(default_factory=list)
    not_run: str = ""  # why validation is not timed on this target, when it is not

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


def ratio(legs: dict[str, Leg], key: str) -> float | None:
    """Ours' rate divided by this method's (None when either is unknown)."""
    ours, other = legs[OURS].rate, legs[key].rate
    return ours / other if ours and other else None


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "SHORT"


def _leg_why(leg: Leg) -> str:
    return {"skipped": "skipped", "failed": "failed", "invalid": "result wrong, see NOTE",
            "not-applicable": "not applicable"}.get(leg.status, "no rate")


def method_table(legs: dict[str, Leg]) -> str:
    """Fixed-width table: method, runs, median seconds, rows/s, ours / this, other processes' load."""
    rows = []
    for leg in legs.values():
        med, rate, rel = leg.median, leg.rate, ratio(legs, leg.key)
        shown = {"invalid": "INVALID", "skipped": "skipped", "not-applicable": "n/a"}
        rate_text = f"{rate:,.0f}" if rate else shown.get(leg.status, "-")
        others = f"{statistics.median(leg.other_cores):.1f}" if leg.other_cores else "-"
        client = f"{statistics.median(leg.client_cpu):.1f}" if leg.client_cpu else "-"
        server = f"{statistics.median(leg.server_cpu):.1f}" if leg.server_cpu else "-"
        rows.append((leg.label, str(len(leg.seconds)), f"{med:.2f}" if med else "-", rate_text,
                     f"{rel:.2f}" if rel else "-", client, server, others))
    headers = ("method", "runs", "median s", "rows/s", "ours / this", "client CPU s", "server CPU s",
               "others' cores")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def summary(values: list[float]) -> dict[str, float] | None:
    """Mean and max of the other processes' load over all timed runs."""
    if not values:
        return None
    return {"mean": round(statistics.fmean(values), 2), "max": round(max(values), 2)}


def busy_lines(others: dict[str, float] | None, cores: int) -> list[str]:
    """How busy the machine was with other work, and a warning when that makes the figures noisy."""
    if others is None:
        return ["Other processes' load during the runs: unknown (no /proc)"]
    out = [f"Other processes' load during the timed runs: mean {others['mean']:.1f}, max {others['max']:.1f} "
           f"of {cores} cores ('client CPU s': this script's processes, i.e. our producers or pgloader; "
           "'server CPU s': the cluster's; medians)"]
    if others["mean"] > BUSY_CORES:
        out.append("WARNING: the machine was busy with other work while the runs were timed: rates and "
                   "ratios are noisy (compare runs in the 'others' cores' column); re-run on a quiet machine")
    return out


def goal_lines(legs: dict[str, Leg], validation: Validation) -> list[str]:
    """The issue's goals, each with its figure and PASS/SHORT (or why it cannot be computed)."""
    out = []
    for name, key, goal in RATE_GOALS:
        if legs[key].status == "not-applicable":
            continue  # a method that does not apply to this target: its NOTE line says why
        value = ratio(legs, key)
        shown = f"{goal:g}x" if key == PGLOADER else f"{goal:.2f}"
        if value is None:
            missing = legs[OURS] if legs[OURS].rate is None else legs[key]
            out.append(f"{name} = n/a (goal >= {shown}): {missing.label}: {_leg_why(missing)}")
        else:
            figure = f"{value:.2f}x" if key == PGLOADER else f"{value:.2f}"
            out.append(f"{name} = {figure} (goal >= {shown}): {_verdict(value >= goal)}")
    load, check = legs[OURS].median, validation.median
    if load and check:
        value = check / load
        out.append(f"validation / load = {check:.2f} s / {load:.2f} s = {value:.2f} (goal: load + validation "
                   f"< 2 x load, i.e. < {VALIDATION_GOAL:.2f}): {_verdict(value < VALIDATION_GOAL)}")
    elif validation.not_run:
        out.append(f"validation / load = n/a: {validation.not_run}")
    else:
        out.append("validation / load = n/a: our load or its validation did not run")
    if validation.failed:
        out.append(f"  validation FAILED {len(validation.failed)} of {validation.checks} checks: "
                   + "; ".join(validation.failed[:5]))
    elif validation.checks:
        out.append(f"  validation: all {validation.checks} checks passed after each of our loads")
    return out


def as_json(header: dict[str, object], legs: dict[str, Leg], validation: Validation) -> dict[str, object]:
    """Everything printed, as data."""
    goals = {name: {"value": _round(ratio(legs, key)), "goal": goal,
                    "pass": (ratio(legs, key) or 0) >= goal if ratio(legs, key) else None}
             for name, key, goal in RATE_GOALS}
    load, check = legs[OURS].median, validation.median
    val_ratio = check / load if load and check else None
    goals["validation / load"] = {"value": _round(val_ratio), "goal": VALIDATION_GOAL,
                                  "pass": val_ratio < VALIDATION_GOAL if val_ratio else None}
    return {
        **header,
        "methods": [{"key": leg.key, "label": leg.label, "rows": leg.rows, "status": leg.status, "note": leg.note,
                     "runs_seconds": [round(s, 3) for s in leg.seconds],
                     "median_seconds": round(leg.median, 3) if leg.median else None,
                     "rows_per_sec": round(leg.rate) if leg.rate else None,
                     "ours_over_this": _round(ratio(legs, leg.key)),
                     "client_cpu_seconds": [round(c, 2) for c in leg.client_cpu],
                     "server_cpu_seconds": [round(c, 2) for c in leg.server_cpu],
                     "other_processes_cores": [round(c, 2) for c in leg.other_cores]} for leg in legs.values()],
        "validation": {"runs_seconds": [round(s, 3) for s in validation.seconds],
                       "median_seconds": _round(validation.median), "checks": validation.checks,
                       "failed": validation.failed},
        "goals": goals,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def write_json(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")

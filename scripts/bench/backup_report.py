"""The backup benchmark's figures: per-leg medians, the (b)/(a) ratio against the goal, the JSON file."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

BASELINE = "bare_pg_dump"
OURS = "dag_dump_upload"
RESTORE = "verify_restore"
RATIO_GOAL = 1.2  # the DAG's dump + upload may take at most 1.2x a bare pg_dump (verification excluded)
BUSY_CORES = 0.25  # other processes' mean load beyond which the figures are called noisy


@dataclass
class Leg:
    """One timed step: seconds of each run, bytes it moved, other processes' load during each run."""

    key: str
    label: str
    seconds: list[float] = field(default_factory=list)
    dump_bytes: list[int] = field(default_factory=list)
    other_cores: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)  # named sub-timings of each run

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def size(self) -> int | None:
        return int(statistics.median(self.dump_bytes)) if self.dump_bytes else None

    def mb_per_s(self, nbytes: int | None) -> float | None:
        med = self.median
        return nbytes / 1e6 / med if nbytes and med else None

    def add_part(self, name: str, seconds: float) -> None:
        self.parts.setdefault(name, []).append(seconds)


def ratio(legs: dict[str, Leg]) -> float | None:
    a, b = legs[BASELINE].median, legs[OURS].median
    return b / a if a and b else None


def per_run_ratios(legs: dict[str, Leg]) -> list[float]:
    return [b / a for a, b in zip(legs[BASELINE].seconds, legs[OURS].seconds, strict=False) if a > 0]


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.1f}"


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                             strict=True)))

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def leg_table(legs: dict[str, Leg], db_bytes: int) -> str:
    """Leg, runs, median / min / max seconds, dump MB, MB/s of the dump's bytes and of the database's size."""
    rows = []
    for leg in legs.values():
        others = f"{statistics.median(leg.other_cores):.1f}" if leg.other_cores else "-"
        rows.append((leg.label, str(len(leg.seconds)), _f(leg.median),
                     _f(min(leg.seconds) if leg.seconds else None), _f(max(leg.seconds) if leg.seconds else None),
                     _mb(leg.size), _f(leg.mb_per_s(leg.size), "{:.1f}"), _f(leg.mb_per_s(db_bytes), "{:.1f}"),
                     others))
    return _table(("step", "runs", "median s", "min s", "max s", "dump MB", "dump MB/s", "db MB/s",
                   "others' cores"), rows)


def parts_table(leg: Leg) -> str:
    """Where the DAG path's time goes (median of each part over the runs)."""
    total = leg.median or 0.0
    rows = [(name, _f(statistics.median(vals)), f"{100 * statistics.median(vals) / total:.0f}%" if total else "-")
            for name, vals in leg.parts.items()]
    return _table(("part of (b)", "median s", "share"), rows)


def goal_lines(legs: dict[str, Leg]) -> list[str]:
    value = ratio(legs)
    a, b = legs[BASELINE].median, legs[OURS].median
    if value is None:
        return [f"(b)/(a) = n/a (goal: at most {RATIO_GOAL}x, verification excluded): a leg did not complete"]
    verdict = "PASS" if value <= RATIO_GOAL else "SHORT"
    rounds = per_run_ratios(legs)
    over = sum(r > RATIO_GOAL for r in rounds)
    return [f"(b)/(a) = {b:.2f} s / {a:.2f} s = {value:.2f}x (goal: at most {RATIO_GOAL}x, verification "
            f"excluded): {verdict}",
            f"  per-round ratios: {', '.join(f'{r:.2f}' for r in rounds)} (median {statistics.median(rounds):.2f}; "
            f"{over} of {len(rounds)} rounds above {RATIO_GOAL}x)"]


def busy_lines(all_other_cores: list[float], cores: int) -> list[str]:
    if not all_other_cores:
        return ["Other processes' load during the timed runs: unknown (no /proc)"]
    mean, top = statistics.fmean(all_other_cores), max(all_other_cores)
    out = [f"Other processes' load during the timed runs: mean {mean:.1f}, max {top:.1f} of {cores} cores"]
    if mean > BUSY_CORES:
        out.append("WARNING: other work kept the machine busy while the runs were timed: seconds and ratios are "
                   "noisy (see the 'others' cores' column); re-run on a quiet machine for firm figures")
    return out


def as_json(header: dict[str, object], legs: dict[str, Leg], db_bytes: int) -> dict[str, object]:
    value = ratio(legs)
    return {
        **header,
        "legs": [{"key": leg.key, "label": leg.label, "runs_seconds": [round(s, 3) for s in leg.seconds],
                  "median_seconds": _round(leg.median), "dump_bytes": leg.size,
                  "dump_mb_per_s": _round(leg.mb_per_s(leg.size)), "db_mb_per_s": _round(leg.mb_per_s(db_bytes)),
                  "other_processes_cores": [round(c, 2) for c in leg.other_cores],
                  "parts_median_seconds": {k: _round(statistics.median(v)) for k, v in leg.parts.items()}}
                 for leg in legs.values()],
        "ratio_b_over_a": {"value": _round(value), "per_run": [round(r, 3) for r in per_run_ratios(legs)],
                           "median_per_run": _round(statistics.median(per_run_ratios(legs)))
                           if per_run_ratios(legs) else None,
                           "goal_at_most": RATIO_GOAL, "pass": value <= RATIO_GOAL if value else None},
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def write_json(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")

"""The load benchmark over several shapes of the same rows: one line per shape, the goals, the furthest shape.

Each shape's legs ran in its own rounds (ours, pgloader, raw COPY interleaved) on a fresh cluster; this
puts their medians side by side, with the CPU seconds per 1M rows of our producer side and of the server,
so the side that bounds each load shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.report import OURS, PGLOADER, RATE_GOALS, RAW_COPY, Leg, ratio

OURS_OTHER_WORKERS = "ours_other_workers"
# The goals every shape is held to (the pk-only target has no secondary index to build after).
SHAPE_GOALS = tuple((name, key, goal) for name, key, goal in RATE_GOALS if key in (PGLOADER, RAW_COPY))


@dataclass
class ShapeRun:
    """One shape's legs, as the benchmark left them."""

    shape: str
    source: str
    legs: dict[str, Leg]
    workers: int = 1  # our default producer count, and the count it is compared with
    other_workers: int = 2

    def ratio(self, key: str) -> float | None:
        return ratio(self.legs, key)

    def shortfall(self) -> float | None:
        """The smallest ratio / goal over the goals (below 1: short of that goal); None when one is unknown."""
        parts = [self.ratio(key) for _, key, _ in SHAPE_GOALS]
        if any(p is None for p in parts):
            return None
        return min(p / goal for p, (_, _, goal) in zip(parts, SHAPE_GOALS, strict=True))  # type: ignore[operator]

    def others(self) -> float | None:
        """Mean cores other processes kept busy during this shape's timed runs (noise when above ~0.25)."""
        values = [c for leg in self.legs.values() for c in leg.other_cores]
        return sum(values) / len(values) if values else None

    def bound_by(self) -> str:
        """The side of our load that used more CPU per row: with one producer and the server on the other core,
        that side's CPU time is about the wall time."""
        ours = self.legs[OURS]
        client, server = ours.cpu_per_million("client"), ours.cpu_per_million("server")
        if client is None or server is None:
            return "?"
        return "producer" if client > server else "server"


def _producers(n: int) -> str:
    return f"{n} producer" + ("s" if n > 1 else "")


def _s(leg: Leg) -> str:
    return f"{leg.median:.2f}" if leg.median and leg.status == "ok" else leg.status.upper()


def _cpu(leg: Leg, side: str) -> str:
    value = leg.cpu_per_million(side)
    return "-" if value is None else f"{value:.1f}"


def _goal_cell(run: ShapeRun, key: str, goal: float) -> str:
    value = run.ratio(key)
    if value is None:
        return "n/a"
    shown = f"{value:.2f}x" if key == PGLOADER else f"{value:.2f}"
    return f"{shown} {'PASS' if value >= goal else 'SHORT'}"


def summary_table(runs: list[ShapeRun]) -> str:
    """Shape, seconds of each method, the two ratios with their verdicts, CPU-s per 1M rows, the bound."""
    first = runs[0]
    headers = ("shape", f"ours s ({_producers(first.workers)})", f"{_producers(first.other_workers)} s",
               "pgloader s", "raw COPY s",
               *(f"{name.replace(' / ', '/')} (>= {goal:g}{'x' if key == PGLOADER else ''})"
                 for name, key, goal in SHAPE_GOALS),
               "ours CPU-s/1M: producer", "server", "raw COPY server CPU-s/1M", "bound by", "others' cores")
    rows = []
    for run in runs:
        legs = run.legs
        rows.append((run.shape, _s(legs[OURS]), _s(legs[OURS_OTHER_WORKERS]), _s(legs[PGLOADER]),
                     _s(legs[RAW_COPY]), *(_goal_cell(run, key, goal) for _, key, goal in SHAPE_GOALS),
                     _cpu(legs[OURS], "client"), _cpu(legs[OURS], "server"), _cpu(legs[RAW_COPY], "server"),
                     run.bound_by(), "-" if run.others() is None else f"{run.others():.1f}"))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                             strict=True)))

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def furthest_line(runs: list[ShapeRun]) -> str:
    """The shape furthest from the goals (the smallest ratio / goal) and which side bounded its load."""
    known = [(run.shortfall(), run) for run in runs if run.shortfall() is not None]
    if not known:
        return "Furthest from the goals: n/a (a leg did not complete on every shape)"
    value, run = min(known, key=lambda pair: pair[0])  # type: ignore[arg-type, return-value]
    worst = min(SHAPE_GOALS, key=lambda g: (run.ratio(g[1]) or 0) / g[2])
    verdict = "every goal met" if value >= 1 else f"{worst[0]} at {value:.0%} of its goal"  # type: ignore[operator]
    return (f"Furthest from the goals: {run.shape} ({verdict}); its load is bound by the {run.bound_by()} "
            f"({_cpu(run.legs[OURS], 'client')} producer vs {_cpu(run.legs[OURS], 'server')} server CPU-s per 1M "
            f"rows; the raw COPY's server {_cpu(run.legs[RAW_COPY], 'server')})")


def as_json(runs: list[ShapeRun]) -> list[dict[str, object]]:
    out = []
    for run in runs:
        legs = run.legs
        out.append({
            "shape": run.shape, "source": run.source,
            "median_seconds": {k: round(leg.median, 3) if leg.median else None for k, leg in legs.items()},
            "ratios": {name: _round(run.ratio(key)) for name, key, _ in SHAPE_GOALS},
            "goals": {name: goal for name, _, goal in SHAPE_GOALS},
            "cpu_seconds_per_million_rows": {
                k: {"client": _round(leg.cpu_per_million("client")), "server": _round(leg.cpu_per_million("server"))}
                for k, leg in legs.items()},
            "bound_by": run.bound_by(), "other_processes_cores": _round(run.others()),
        })
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)

"""The backup benchmark's figures: per-step medians and parts, CPU by process, the ratios, the JSON file."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bench import backup_cpu
from bench.backup_legs import BARE_RESTORE, RESTORE, SCRATCH_SETUP

BASELINE = "bare_pg_dump"  # (a)
OURS = "dag_dump"  # (b)
RESTORE_BASE = "bare_pg_restore"  # (c)
VERIFY = "dag_verify"  # (d)
RATIO_GOAL = 1.2  # the DAG's dump may take at most 1.2x a bare pg_dump (issue 13; verification excluded)
BUSY_CORES = 0.25  # other processes' mean load beyond which the figures are called noisy


@dataclass
class Leg:
    """One timed step: seconds of each run, bytes it moved, its named parts, CPU by process, others' load."""

    key: str
    label: str
    seconds: list[float] = field(default_factory=list)
    dump_bytes: list[int] = field(default_factory=list)
    other_cores: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # CPU seconds of each run by process group
    part_mb: int | None = None  # a variant of (b) with this part size

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def size(self) -> int | None:
        return int(statistics.median(self.dump_bytes)) if self.dump_bytes else None

    def mb_per_s(self, nbytes: int | None) -> float | None:
        med = self.median
        return nbytes / 1e6 / med if nbytes and med else None

    @property
    def cpu_runs(self) -> list[float]:
        """CPU seconds of each run, all process groups together."""
        return _sum_rounds(*self.cpu.values()) if self.cpu else []

    def add_parts(self, parts: dict[str, float]) -> None:
        for name, seconds in parts.items():
            self.parts.setdefault(name, []).append(seconds)

    def add_cpu(self, used: dict[str, float]) -> None:
        for group, seconds in used.items():
            self.cpu.setdefault(group, []).append(seconds)


@dataclass(frozen=True)
class Ratio:
    """One figure over another, run by run (same round) and as the ratio of the medians."""

    name: str
    num: list[float]
    den: list[float]
    goal: float | None = None

    @property
    def value(self) -> float | None:
        if not self.num or not self.den or statistics.median(self.den) <= 0:
            return None
        return statistics.median(self.num) / statistics.median(self.den)

    @property
    def per_round(self) -> list[float]:
        return [n / d for n, d in zip(self.num, self.den, strict=False) if d > 0]

    @property
    def passed(self) -> bool | None:
        return None if self.goal is None or self.value is None else self.value <= self.goal


def _sum_rounds(*series: list[float]) -> list[float]:
    return [sum(vals) for vals in zip(*series, strict=True)]


def ratios(legs: dict[str, Leg]) -> list[Ratio]:
    a, b, c, d = legs[BASELINE], legs[OURS], legs[RESTORE_BASE], legs[VERIFY]
    out = [Ratio("(b)/(a)  DAG dump streamed to the bucket / bare pg_dump -Fc", b.seconds, a.seconds, RATIO_GOAL),
           Ratio("(b)/(a)  in CPU seconds of our processes (pg_dump, this one, moto, PostgreSQL)", b.cpu_runs,
                 a.cpu_runs)]
    out += [Ratio(f"(b')/(a)  the same with {leg.part_mb} MB parts", leg.seconds, a.seconds, RATIO_GOAL)
            for leg in legs.values() if leg.part_mb]
    out += [Ratio("(d)/(c)  DAG verify (fetch + restore + compare + drop) / bare restore", d.seconds, c.seconds),
            Ratio("(d)/(c)  in CPU seconds of our processes", d.cpu_runs, c.cpu_runs),
            Ratio("restore part of (d) / (c)  (CREATE DATABASE, pre/post restore, pg_restore)",
                  _sum_rounds(d.parts.get(SCRATCH_SETUP, []), d.parts.get(RESTORE, [])), c.seconds),
            Ratio("pg_restore in (d) / pg_restore in (c)", d.parts.get(RESTORE, []), c.parts.get(BARE_RESTORE, []))]
    return out


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.1f}"


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _med(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def _short(leg: Leg) -> str:
    return leg.label.split(" ", 1)[0]


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def leg_table(legs: dict[str, Leg]) -> str:
    """Step, runs, median / min / max seconds, dump MB and MB/s, CPU seconds, other processes' load."""
    rows = []
    for leg in legs.values():
        cpu = sum(statistics.median(v) for v in leg.cpu.values()) if leg.cpu else None
        rows.append((leg.label, str(len(leg.seconds)), _f(leg.median),
                     _f(min(leg.seconds) if leg.seconds else None), _f(max(leg.seconds) if leg.seconds else None),
                     _mb(leg.size), _f(leg.mb_per_s(leg.size), "{:.1f}"), _f(cpu, "{:.1f}"),
                     _f(_med(leg.other_cores), "{:.1f}")))
    return _table(("step", "runs", "median s", "min s", "max s", "dump MB", "dump MB/s", "CPU s",
                   "others' cores"), rows)


def parts_table(leg: Leg) -> str:
    """Where a step's time goes (median of each part over the runs)."""
    total = leg.median or 0.0
    rows = [(name, _f(statistics.median(vals)), f"{100 * statistics.median(vals) / total:.0f}%" if total else "-")
            for name, vals in leg.parts.items()]
    return _table((f"part of {_short(leg)}", "median s", "share"), rows)


def cpu_table(legs: dict[str, Leg]) -> str:
    """CPU seconds of each process group in each step (medians), against the step's wall seconds."""
    shown = [leg for leg in legs.values() if leg.cpu]
    rows = [(group, *(_f(_med(leg.cpu.get(group, [])), "{:.1f}") for leg in shown)) for group in backup_cpu.GROUPS]
    rows.append(("wall seconds", *(_f(leg.median, "{:.1f}") for leg in shown)))
    return _table(("CPU seconds by process", *(_short(leg) for leg in shown)), rows)


def probe_table(probes: dict[str, list[float]], dump_bytes: int | None) -> str:
    rows = [(name, str(len(vals)), _f(_med(vals)),
             _f(dump_bytes / 1e6 / statistics.median(vals) if dump_bytes and vals else None, "{:.0f}"))
            for name, vals in probes.items()]
    return _table(("probe (in no ratio)", "runs", "median s", "dump MB/s"), rows)


def goal_lines(legs: dict[str, Leg]) -> list[str]:
    out = []
    for r in ratios(legs):
        if r.value is None:
            out.append(f"{r.name} = n/a: a step did not complete")
            continue
        goal = "" if r.goal is None else f"  (goal: at most {r.goal}x): {'PASS' if r.passed else 'SHORT'}"
        rounds = ", ".join(f"{x:.2f}" for x in r.per_round)
        out.append(f"{r.name} = {statistics.median(r.num):.2f} s / {statistics.median(r.den):.2f} s = "
                   f"{r.value:.2f}x{goal}")
        out.append(f"    per round: {rounds} (median {statistics.median(r.per_round):.2f})")
    return out


def busy_lines(all_other_cores: list[float], cores: int) -> list[str]:
    if not all_other_cores:
        return ["Other processes' load during the timed runs: unknown (no /proc)"]
    mean, top = statistics.fmean(all_other_cores), max(all_other_cores)
    out = [f"Other processes' load during the timed runs: mean {mean:.1f}, max {top:.1f} of {cores} cores"]
    if mean > BUSY_CORES:
        out.append("WARNING: other work kept the machine busy while the runs were timed: seconds and ratios are "
                   "noisy (see the 'others' cores' column); re-run on a quiet machine for firm figures")
    return out


def as_json(header: dict[str, object], legs: dict[str, Leg], probes: dict[str, list[float]]) -> dict[str, object]:
    return {
        **header,
        "legs": [{"key": leg.key, "label": leg.label, "runs_seconds": [round(s, 3) for s in leg.seconds],
                  "median_seconds": _round(leg.median), "dump_bytes": leg.size,
                  "dump_mb_per_s": _round(leg.mb_per_s(leg.size)),
                  "other_processes_cores": [round(c, 2) for c in leg.other_cores],
                  "parts_median_seconds": {k: _round(_med(v)) for k, v in leg.parts.items()},
                  "cpu_median_seconds": {k: _round(_med(v)) for k, v in leg.cpu.items()},
                  "cpu_runs_seconds": [round(c, 2) for c in leg.cpu_runs]}
                 for leg in legs.values()],
        "ratios": [{"name": r.name, "value": _round(r.value), "per_round": [round(x, 3) for x in r.per_round],
                    "goal_at_most": r.goal, "pass": r.passed} for r in ratios(legs)],
        "probes_median_seconds": {k: _round(_med(v)) for k, v in probes.items()},
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def write_json(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")

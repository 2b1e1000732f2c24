"""Which backups expire: older than ``max_age_days``, except the newest ``keep_verified`` verified ones.

Pure logic (no I/O): the retention task gathers what exists (bucket and local directory) and applies the
plan this module returns, so the rule itself is tested without a bucket.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Candidate:
    """One backup as retention sees it: its name, when it was taken, whether a restore proved it."""

    stem: str
    taken_at: datetime
    verified: bool


@dataclass(frozen=True)
class RetentionPlan:
    """The decision for every candidate, with the reason (the log prints it)."""

    delete: tuple[str, ...]
    keep: dict[str, str]


def plan(candidates: Iterable[Candidate], *, now: datetime, max_age_days: int, keep_verified: int,
         always_keep: Iterable[str] = ()) -> RetentionPlan:
    """Delete what is older than ``max_age_days`` unless it is one of the newest ``keep_verified`` verified
    backups (whatever their age) or named in ``always_keep`` (the current run's backup, the "latest")."""
    if max_age_days < 1 or keep_verified < 1:
        raise ValueError("max_age_days and keep_verified must be >= 1")
    items = sorted(candidates, key=lambda c: c.taken_at, reverse=True)
    protected = {c.stem for c in [c for c in items if c.verified][:keep_verified]}
    pinned = set(always_keep)
    cutoff = now - timedelta(days=max_age_days)
    delete, keep = [], {}
    for c in items:
        if c.stem in pinned:
            keep[c.stem] = "current or latest backup"
        elif c.stem in protected:
            keep[c.stem] = f"one of the newest {keep_verified} verified"
        elif c.taken_at >= cutoff:
            keep[c.stem] = f"younger than {max_age_days} days"
        else:
            delete.append(c.stem)
    return RetentionPlan(tuple(delete), keep)

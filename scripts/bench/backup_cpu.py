"""Whose CPU a timed step of the backup benchmark used: this process, the client programs it ran, moto, PostgreSQL.

On 2 cores a step's wall time depends on who else wants them, so each step's CPU seconds are split by process
group (Linux /proc; elsewhere: nothing). A finished ``pg_dump`` / ``pg_restore`` has its CPU in this process's
reaped-children time, a finished backend in the postmaster's: every group's total only ever grows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

SELF = "this process (SHA-256, boto3, psycopg)"
CLIENTS = "pg_dump / pg_restore"
MOTO = "moto (S3 server)"
SERVER = "PostgreSQL server"
GROUPS = (SELF, CLIENTS, MOTO, SERVER)


def _times(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, the process's own CPU seconds, its reaped children's) from /proc/<pid>/stat."""
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # the name may hold spaces
    except (OSError, IndexError):
        return None
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK, (int(rest[13]) + int(rest[14])) / _TICK


def _tree(root: int, tries: int = 5) -> float:
    """CPU seconds of ``root``, its reaped children and its live children (a postmaster and its backends).

    A backend reaped while /proc is being read would be in neither sum (gone from /proc, its time moved into
    the root's after the root was read): the scan is repeated until the root's reaped time stays the same."""
    total = 0.0
    for _ in range(tries):
        first = _times(root)
        if first is None:
            return 0.0
        total = first[1] + first[2]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != root:
                t = _times(int(entry.name))
                if t and t[0] == root:
                    total += t[1] + t[2]
        last = _times(root)
        if last is not None and last[2] == first[2]:
            break
    return total


@dataclass(frozen=True)
class Split:
    """CPU seconds used so far by each group."""

    seconds: dict[str, float]

    def minus(self, before: Split) -> dict[str, float]:
        return {g: max(0.0, self.seconds[g] - before.seconds[g]) for g in self.seconds}


def sample(postmaster: int | None, moto: int | None) -> Split | None:
    me = _times(os.getpid())
    if me is None:
        return None
    moto_t = _times(moto) if moto else None
    return Split({SELF: me[1], CLIENTS: me[2], MOTO: moto_t[1] if moto_t else 0.0,
                  SERVER: _tree(postmaster) if postmaster else 0.0})

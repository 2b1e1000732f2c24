"""How busy the machine was with other work while a run was timed (Linux /proc; elsewhere: unknown).

A benchmark on a shared machine measures the neighbours too. Around each timed run this takes the CPU
time all processes used (/proc/stat) minus what the benchmark's own processes used: this Python and its
children (producer processes, pgloader) and the benchmark cluster's postmaster with its backends. Reaped
children's time moves into their parent's ``cutime``/``cstime``, so the sum below only ever grows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy() -> float | None:
    """CPU seconds every process has used since boot (idle and iowait excluded)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return int(rest[1]), sum(int(v) for v in rest[11:15]) / _TICK


def _own_cpu(postmaster: int | None) -> tuple[float, float]:
    """CPU seconds of this process tree (the client side: producers, pgloader) and of the cluster's postmaster
    tree (the server: backends, checkpointer, WAL writer), live children included."""
    me = os.getpid()
    client = server = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        st = _stat(pid)
        if st is None:
            continue
        if me in (pid, st[0]):
            client += st[1]
        elif postmaster and postmaster in (pid, st[0]):
            server += st[1]
    return client, server


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Sample:
    machine: float | None
    client: float  # this process tree
    server: float  # the cluster's postmaster tree

    @property
    def own(self) -> float:
        return self.client + self.server


def sample(postmaster: int | None) -> Sample:
    return Sample(_machine_busy(), *_own_cpu(postmaster))


def other_cores(start: Sample, end: Sample, seconds: float) -> float | None:
    """Cores that processes outside the benchmark kept busy on average between two samples."""
    if start.machine is None or end.machine is None or seconds <= 0:
        return None
    return max(0.0, ((end.machine - start.machine) - (end.own - start.own)) / seconds)

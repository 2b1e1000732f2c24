"""Tables a step found locked by another session: the rest of such a table is left alone for that step.

A lock another session holds on a table (a long transaction, a migration's ALTER TABLE, a LOCK TABLE) is
still held a moment later: once one partition, chunk or index of the table was refused its lock within
``lock_timeout``, each next one would wait out another ``lock_timeout`` for the same answer. So the first
refusal marks the table for the step, its other objects are counted but not attempted, and the step ends
with one record in ``ops.maintenance_log`` and one log line per locked table: how many objects were skipped
and which sessions held locks on the table (pid, application_name, state and lock mode from ``pg_locks`` and
``pg_stat_activity``, never their query text). The other tables go on; a statement timeout or any other
failure stays the object's own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from quantdbops.maintenance.catalog import display_name
from quantdbops.maintenance.record import MaintenanceLog
from quantdbops.maintenance.session import SKIPPED, Outcome, Timeouts, attempt_call
from quantdbops.sqlfiles import read_sql

_PLURAL = {"index": "indexes"}


def counted(n: int, noun: str) -> str:
    """``3 partitions``, ``1 index``, ``2 indexes``."""
    return f"{n} {noun if n == 1 else _PLURAL.get(noun, noun + 's')}"


@dataclass
class LockedTable:
    """A table's first refused lock in a step, and what the step skipped of the table."""

    action: str  # the action of the refused object: the table's record is filed under it
    attempted: str  # the one object that was tried
    seconds: float
    held_by: list[dict[str, Any]]  # pid, application_name, state, mode
    skipped: Counter[str] = field(default_factory=Counter)  # noun -> objects, the attempted one included

    @property
    def total(self) -> int:
        return sum(self.skipped.values())

    def message(self, lock_timeout: str) -> str:
        """What was skipped first (the closing table shows a message's start), then why and who held it."""
        holders = "; ".join(f"pid {h['pid']} (application_name {h['application_name']!r}, state {h['state']!r}, "
                            f"holds {h['mode']})" for h in self.held_by)
        what = ("the table" if set(self.skipped) == {"table"} else
                ", ".join(counted(n, noun) for noun, n in self.skipped.items()))
        rest = f" ({self.total - 1} of them not attempted)" if self.total > 1 else ""
        return (f"{what} skipped this step{rest}: lock not granted within lock_timeout {lock_timeout} on "
                f"{self.attempted}; table locked by {holders or 'another session (gone when looked up)'}. Next "
                "week's run tries again; if it recurs, look at that session in pg_stat_activity")


class LockedTables:
    """One step's memo: every per-object statement of a registry table goes through ``attempt``; ``report``
    closes the step."""

    def __init__(self, conn: psycopg.Connection, timeouts: Timeouts, log: MaintenanceLog,
                 say: Callable[..., None]) -> None:
        self.conn = conn
        self.timeouts = timeouts
        self.log = log
        self.say = say
        self.tables: dict[str, LockedTable] = {}

    def attempt(self, table: str, obj: str, noun: str, action: str, work: Callable[[], Any]) -> Outcome | None:
        """``work``'s outcome, or None when the object is left alone because ``table`` is locked (refused now
        or earlier in this step): the object is counted for the table's record and the caller records nothing.
        """
        locked = self.tables.get(table)
        if locked is None:
            outcome = attempt_call(self.conn, self.timeouts, work)
            if outcome.status != SKIPPED:  # done, or a failure of the object's own: the caller records it
                return outcome
            locked = self.tables[table] = LockedTable(action, obj, outcome.seconds, self._holders(table))
        locked.skipped[noun] += 1
        return None

    def _holders(self, table: str) -> list[dict[str, Any]]:
        """Who holds locks on the table now, a moment after the refusal; [] when that cannot be read."""
        cur = self.conn.cursor(row_factory=psycopg.rows.dict_row)
        found = attempt_call(self.conn, self.timeouts, lambda: cur.execute(
            read_sql("maintenance/select_lock_holders.sql"), {"table": table}).fetchall())
        return found.value or []

    @property
    def skipped(self) -> int:
        """Objects skipped because their table was locked, over all tables of the step."""
        return sum(t.total for t in self.tables.values())

    def report(self) -> dict[str, int]:
        """One record and one log line per locked table; ``{table: objects skipped}`` for the step's result."""
        for table, locked in self.tables.items():
            name = display_name("public", table)
            message = locked.message(self.timeouts.lock_timeout)
            self.log.record(locked.action, name, SKIPPED, duration_s=locked.seconds, message=message,
                            before={"attempted": locked.attempted, "skipped": locked.total,
                                    "by_kind": dict(locked.skipped), "held_by": locked.held_by})
            self.say("SKIPPED %s (%s): %s", name, locked.action, message)
        return {table: locked.total for table, locked in self.tables.items()}

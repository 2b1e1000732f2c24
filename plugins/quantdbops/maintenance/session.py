"""A maintenance connection's timeouts, and what a refused lock or a cancelled statement means.

Every statement of the maintenance runs under ``lock_timeout`` and ``statement_timeout`` (set for the
session on an autocommit connection, so VACUUM and the CONCURRENTLY commands may run at all). A lock not
granted in time is not an error of the run: the object is skipped and reported, the run goes on (and the
step leaves the rest of that table alone: ``locked``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors

from quantdbops.sqlfiles import read_sql

SKIPPED = "skipped"
FAILED = "failed"


@dataclass(frozen=True)
class Timeouts:
    """Session timeouts of a maintenance connection."""

    lock_timeout_s: int = 5
    statement_timeout_min: int = 60

    @property
    def lock_timeout(self) -> str:
        return f"{self.lock_timeout_s}s"

    @property
    def statement_timeout(self) -> str:
        return f"{self.statement_timeout_min}min"


def apply_timeouts(conn: psycopg.Connection, timeouts: Timeouts) -> None:
    """Set both timeouts for the rest of the session (autocommit: each statement is its own transaction)."""
    if not conn.autocommit:
        raise ValueError("maintenance needs an autocommit connection (VACUUM, REINDEX/DROP INDEX CONCURRENTLY)")
    conn.execute(read_sql("maintenance/set_session_timeouts.sql"),
                 {"lock_timeout": timeouts.lock_timeout, "statement_timeout": timeouts.statement_timeout})


def classify(exc: psycopg.Error, timeouts: Timeouts) -> tuple[str, str]:
    """(status, message) for a database error of one object's statement.

    A lock not granted is ``skipped`` (somebody holds the table; next week will do); everything else of
    the statement's own making is ``failed`` with the server's message.
    """
    if isinstance(exc, errors.LockNotAvailable):
        return SKIPPED, (f"lock not granted within lock_timeout {timeouts.lock_timeout}: another session holds "
                         "it; skipped, not waited on (see pg_locks / pg_stat_activity if it recurs)")
    if isinstance(exc, errors.QueryCanceled):
        return FAILED, (f"cancelled by statement_timeout {timeouts.statement_timeout} (or an operator); raise "
                        "statement_timeout_min for a manual run, or run it off-peak")
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return FAILED, f"{type(exc).__name__}: {text}"


@dataclass
class Outcome:
    """What one statement on one object came to: ``status`` is None when it succeeded (``value``: its result)."""

    status: str | None = None
    message: str | None = None
    seconds: float = 0.0
    value: Any = None


def attempt_call(conn: psycopg.Connection, timeouts: Timeouts, work: Callable[[], Any]) -> Outcome:
    """Do one object's work (a statement, a measurement); a database error of it becomes an ``Outcome``.

    A broken connection is raised instead: the task fails and Airflow's retry reconnects.
    """
    started = time.monotonic()
    try:
        value = work()
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise
        status, message = classify(exc, timeouts)
        return Outcome(status, message, time.monotonic() - started)
    return Outcome(None, None, time.monotonic() - started, value)


def attempt(conn: psycopg.Connection, timeouts: Timeouts, statement: object, params: object = None) -> Outcome:
    """Run one maintenance statement (see ``attempt_call``)."""
    return attempt_call(conn, timeouts, lambda: conn.execute(statement, params))  # type: ignore[arg-type]


@dataclass
class Session:
    """What every step works with: the autocommit connection (timeouts set), the mode and the record."""

    conn: psycopg.Connection
    mode: Any
    log: Any
    timeouts: Timeouts


@contextmanager
def maintenance_session(target: Any, request: Any, run_id: str, *, application_name: str = "quant-db-ops maintenance"
                        ) -> Iterator[Session]:
    """Open an autocommit connection to ``target`` (a ``PgTarget``, conn id or DSN) with the request's timeouts set.

    Raises ``LookupError`` when the ops schema (and so ``ops.maintenance_log``) does not exist.
    """
    from quantdbops.io.pg import connect, detect_mode
    from quantdbops.maintenance.record import MaintenanceLog, ops_schema_ready

    with connect(target, autocommit=True, application_name=application_name) as conn:
        if not ops_schema_ready(conn):
            raise LookupError("ops.maintenance_log does not exist: the target schema was never applied")
        mode = detect_mode(conn)
        timeouts = Timeouts(request.lock_timeout_s, request.statement_timeout_min)
        apply_timeouts(conn, timeouts)
        yield Session(conn, mode, MaintenanceLog(conn, run_id), timeouts)

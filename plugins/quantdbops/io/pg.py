"""PostgreSQL connections (psycopg 3) for tasks, scripts and tests.

Tasks name an Airflow connection id; scripts and tests pass a libpq DSN. Either way every session runs
in the platform's time zone with ISO dates, so rendered timestamps and dates are the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from quantdbops import CONN_POSTGRES, PLATFORM_TZ

SESSION_OPTIONS = f"-c TimeZone={PLATFORM_TZ} -c DateStyle=ISO,YMD -c extra_float_digits=1"


def connection_kwargs(conn_id: str = CONN_POSTGRES) -> dict[str, object]:
    """libpq keyword arguments of an Airflow connection (read through Airflow's normal mechanisms)."""
    from airflow.sdk import BaseHook  # heavy import: only when a task runs

    c = BaseHook.get_connection(conn_id)
    kwargs: dict[str, object] = {
        "host": c.host or "localhost",
        "port": c.port or 5432,
        "dbname": c.schema or "quant_platform",
        "user": c.login,
        "password": c.password,
    }
    extra = c.extra_dejson
    for key in ("sslmode", "sslrootcert", "connect_timeout"):
        if key in extra:
            kwargs[key] = extra[key]
    return {k: v for k, v in kwargs.items() if v not in (None, "")}


def connect(target: str | dict[str, object] = CONN_POSTGRES, *, autocommit: bool = False,
            application_name: str = "quant-db-ops") -> psycopg.Connection:
    """Open a connection: ``target`` is an Airflow conn id, a DSN containing '=' or '://', or kwargs.

    A failure a retry cannot fix (no such database or role, password or pg_hba.conf refusal, TLS mismatch)
    raises ``ActionableFailure`` at once (``quantdbops.io.failures``); any other ``OperationalError``
    propagates as it is, with a note that it is transient, so Airflow's task retries apply.
    """
    if isinstance(target, dict):
        kwargs = dict(target)
    elif "=" in target or "://" in target:
        kwargs = {"conninfo": target}
    else:
        kwargs = connection_kwargs(target)
    try:
        return psycopg.connect(
            **kwargs, autocommit=autocommit, options=SESSION_OPTIONS, application_name=application_name
        )
    except psycopg.Error as exc:  # OperationalError mostly; InvalidCatalogName (3D000) is a ProgrammingError
        from quantdbops.io import failures

        where = failures.safe_target(kwargs)
        failure = failures.not_retried(exc, where)
        if failure is not None:
            raise failure from exc
        if isinstance(exc, psycopg.OperationalError):
            exc.add_note(failures.transient_note(exc, where))
        raise


@dataclass(frozen=True)
class DbMode:
    """What the target database is: TimescaleDB (with its version) or plain PostgreSQL."""

    timescaledb: bool
    tsdb_version: str | None
    pg_version: str

    @property
    def name(self) -> str:
        return "timescaledb" if self.timescaledb else "postgresql"

    def describe(self) -> str:
        if self.timescaledb:
            return f"TimescaleDB {self.tsdb_version} on PostgreSQL {self.pg_version}"
        return f"plain PostgreSQL {self.pg_version} (native partitioning, materialized views)"


def server_version(conn: psycopg.Connection) -> str:
    return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]


def installed_extension(conn: psycopg.Connection, name: str) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = %s", (name,)).fetchone()
    return row[0] if row else None


def detect_mode(conn: psycopg.Connection) -> DbMode:
    """The mode the schema lives in: the recorded one once the schema exists, else the extension's."""
    tsdb = installed_extension(conn, "timescaledb")
    recorded = None
    if conn.execute("SELECT to_regclass('ops.schema_version')").fetchone()[0]:
        row = conn.execute("SELECT mode FROM ops.schema_version ORDER BY id DESC LIMIT 1").fetchone()
        recorded = row[0] if row else None
    timescale = recorded == "timescaledb" if recorded else tsdb is not None
    return DbMode(timescaledb=timescale, tsdb_version=tsdb if timescale else None,
                  pg_version=server_version(conn))

"""PostgreSQL connections (psycopg 3) for tasks, scripts and tests.

Tasks name an Airflow connection id: it is resolved by the postgres provider's ``PostgresHook`` and connected
through its ``get_conn()``, so every extra the provider documents applies (``sslmode``, ``sslrootcert``,
``sslcert``, ``sslkey``, ``options``, ``keepalives*``, ``connect_timeout``, a URI's query parameters, and
``iam`` with ``aws_conn_id`` for RDS and Redshift, whose token is fetched afresh on every connection).
``pg_dump`` and ``pg_restore`` get the very same arguments (``libpq_args``), the password through the
environment only. Scripts and tests pass a libpq DSN or keyword arguments instead.

Either way every session runs in the platform's time zone with ISO dates and shortest exact floats (set after
connecting, so a connection's own ``options`` keep working beside them), and a failure a retry cannot fix is
raised at once (``quantdbops.io.failures``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from quantdbops import CONN_POSTGRES, PLATFORM_TZ

# The session settings every connection runs with: rendered dates, timestamps and floats are then the same
# on every worker, whatever the server's or the connection's defaults.
SESSION_SETTINGS = (("TimeZone", PLATFORM_TZ), ("DateStyle", "ISO, YMD"), ("extra_float_digits", "1"))
SESSION_OPTIONS = " ".join(f"-c {name}={value.replace(' ', '')}" for name, value in SESSION_SETTINGS)


def _hook(conn_id: str, database: str | None = None) -> Any:
    from airflow.providers.postgres.hooks.postgres import PostgresHook  # heavy import: only when a task runs

    return PostgresHook(postgres_conn_id=conn_id, database=database)


def libpq_args(conn_id: str = CONN_POSTGRES, *, database: str | None = None) -> dict[str, object]:
    """The libpq keyword arguments the provider's hook connects with, for a client program (``pg_dump``):
    host, port, user, password (an IAM token where the connection says ``iam``), the database, and every
    extra the hook passes on to libpq. Resolved afresh on each call (an IAM token lives 15 minutes)."""
    hook = _hook(conn_id, database)
    conn = hook.connection
    args: dict[str, object] = {"host": conn.host, "port": conn.port, "user": conn.login, "password": conn.password,
                               "dbname": database or conn.schema}
    extra = conn.extra_dejson
    if extra.get("iam", False):
        args["user"], args["password"], args["port"] = hook.get_iam_token(conn)
    args.update({k: v for k, v in extra.items() if k not in hook.ignored_extra_options})
    return {k: v for k, v in args.items() if v not in (None, "")}


def connection_kwargs(conn_id: str = CONN_POSTGRES) -> dict[str, object]:
    """The libpq arguments of an Airflow connection (``libpq_args``): kept for callers that hand them on."""
    return libpq_args(conn_id)


@dataclass(frozen=True)
class PgTarget:
    """A database a task connects to: an Airflow connection, resolved through the provider's hook each time it
    is used, or fixed libpq arguments (scripts, tests); ``database`` picks another database of that server."""

    conn_id: str | None = None
    fixed: Mapping[str, object] | None = None
    database: str | None = None

    @classmethod
    def of(cls, target: PgTarget | str | Mapping[str, object]) -> PgTarget:
        """A target from a conn id, a DSN ('=' or '://' in it), keyword arguments, or a target."""
        if isinstance(target, PgTarget):
            return target
        if isinstance(target, str) and ("=" in target or "://" in target):
            return cls(fixed={**psycopg.conninfo.conninfo_to_dict(target)})
        if isinstance(target, str):
            return cls(conn_id=target)
        return cls(fixed=dict(target))

    def on(self, database: str) -> PgTarget:
        return PgTarget(self.conn_id, self.fixed, database)

    def args(self) -> dict[str, object]:
        """libpq keyword arguments (fresh: an IAM token where the connection asks for one)."""
        if self.conn_id is not None:
            return libpq_args(self.conn_id, database=self.database)
        out = dict(self.fixed or {})
        if self.database:
            out["dbname"] = self.database
        return out

    @property
    def dbname(self) -> str:
        if self.database:
            return self.database
        if self.conn_id is not None:
            return str(_hook(self.conn_id).connection.schema or "")
        return str((self.fixed or {}).get("dbname", ""))

    def connect(self, *, autocommit: bool = False, application_name: str = "quant-db-ops") -> psycopg.Connection:
        return connect(self, autocommit=autocommit, application_name=application_name)


TargetLike = PgTarget | Mapping[str, object] | str  # what the steps accept: see ``PgTarget.of``


def _apply_session(conn: psycopg.Connection, application_name: str) -> None:
    conn.row_factory = tuple_row  # a connection's `cursor` extra must not change what our queries return
    conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(  # one round trip
        sql.SQL("set_config({}, {}, false)").format(sql.Literal(name), sql.Literal(value))
        for name, value in (*SESSION_SETTINGS, ("application_name", application_name)))))
    if not conn.autocommit:
        conn.commit()


def connect(target: PgTarget | str | Mapping[str, object] = CONN_POSTGRES, *, autocommit: bool = False,
            application_name: str = "quant-db-ops") -> psycopg.Connection:
    """Open a connection: ``target`` is an Airflow conn id (through the provider's hook), a DSN containing '='
    or '://', keyword arguments, or a ``PgTarget``.

    A failure a retry cannot fix (no such database or role, password or pg_hba.conf refusal, TLS mismatch)
    raises ``ActionableFailure`` at once (``quantdbops.io.failures``); any other ``OperationalError``
    propagates as it is, with a note that it is transient, so Airflow's task retries apply.
    """
    t = PgTarget.of(target)
    where: dict[str, object] = {}
    try:
        if t.conn_id is not None:
            hook = _hook(t.conn_id, t.database)
            c = hook.connection
            where = {"host": c.host, "port": c.port, "dbname": t.database or c.schema, "user": c.login}
            conn = hook.get_conn()
            conn.autocommit = autocommit
            _apply_session(conn, application_name)
            return conn
        kwargs = t.args()
        where = kwargs
        return psycopg.connect(**kwargs, autocommit=autocommit, options=SESSION_OPTIONS,
                               application_name=application_name)
    except psycopg.Error as exc:  # OperationalError mostly; InvalidCatalogName (3D000) is a ProgrammingError
        from quantdbops.io import failures

        safe = failures.safe_target(where)
        failure = failures.not_retried(exc, safe)
        if failure is not None:
            if t.conn_id is not None:  # say which connection to fix
                failure = type(failure)(failure.message, what_to_do=f"in the Airflow connection {t.conn_id}: "
                                                                   f"{failure.what_to_do}")
            raise failure from exc
        if isinstance(exc, psycopg.OperationalError):
            exc.add_note(failures.transient_note(exc, safe))
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

"""Apply the target schema: idempotent, versioned, in TimescaleDB or plain-PostgreSQL mode.

One function every DAG reuses (the migration's prepare task, the backup's restore checks, tests):
extensions first (outside the transaction, as TimescaleDB asks), then everything else in one transaction
under an advisory lock, so two concurrent runs cannot interleave and a failure leaves nothing half-made.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import date

import psycopg
from psycopg import sql

from quantdbops.io.pg import DbMode, detect_mode, installed_extension
from quantdbops.registry import AGGREGATES, TABLES
from quantdbops.schema import partitions
from quantdbops.schema.render import TimescaleApi, compression_sql, parse_version, tables_sql
from quantdbops.sqlfiles import read_sql

SCHEMA_VERSION = "1"
LOCK_KEY = 774_201_001  # pg_advisory_xact_lock key of schema changes
OPTIONAL_EXTENSIONS = ("pg_stat_statements", "pgcrypto", "pgstattuple")
ROLE_PASSWORD_ENV = {"quant_user": "QUANT_USER_PASSWORD", "quant_readonly": "QUANT_READONLY_PASSWORD"}
PARTITION_MONTHS_AHEAD = 3

log = logging.getLogger(__name__)


@dataclass
class ApplyResult:
    """What applying the schema found and did (XCom-safe through ``as_dict``)."""

    mode: DbMode
    checksum: str
    statements: int
    changed: bool
    seconds: float
    extensions: dict[str, str] = field(default_factory=dict)
    partitions_created: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode.name, "mode_description": self.mode.describe(),
            "tsdb_version": self.mode.tsdb_version, "pg_version": self.mode.pg_version,
            "checksum": self.checksum, "statements": self.statements, "changed": self.changed,
            "seconds": round(self.seconds, 3), "extensions": self.extensions,
            "partitions_created": len(self.partitions_created), "notes": self.notes,
        }


def split_statements(text: str) -> list[str]:
    """Split a SQL file on ';' at line ends, keeping $$-quoted bodies whole; drops comment-only parts."""
    out, buf, in_dollar = [], [], False
    for line in text.splitlines():
        if line.count("$$") % 2 == 1:
            in_dollar = not in_dollar
        buf.append(line)
        if not in_dollar and line.rstrip().endswith(";"):
            stmt = "\n".join(buf).strip().rstrip(";").strip()
            buf = []
            if any(part.strip() and not part.strip().startswith("--") for part in stmt.splitlines()):
                out.append(stmt)
    tail = "\n".join(buf).strip()
    if tail and any(p.strip() and not p.strip().startswith("--") for p in tail.splitlines()):
        out.append(tail)
    return out


def ensure_extensions(conn: psycopg.Connection) -> tuple[dict[str, str], list[str]]:
    """Create TimescaleDB (where the server can load it) and the optional extensions; autocommit."""
    notes = []
    available = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions")}
    if "timescaledb" in available and not installed_extension(conn, "timescaledb"):
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        if "timescaledb" in preload:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        else:
            notes.append("timescaledb is installed but not in shared_preload_libraries: plain mode")
    for ext in OPTIONAL_EXTENSIONS:
        if ext in available:
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
        else:
            notes.append(f"extension {ext} is not available on this server")
    versions = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT extname, extversion FROM pg_extension WHERE extname = ANY(%s)",
            (["timescaledb", *OPTIONAL_EXTENSIONS],),
        )
    }
    return versions, notes


def rendered_statements(mode: DbMode) -> list[str]:
    """Every idempotent statement of the schema in this mode, in order (compression settings aside)."""
    api = TimescaleApi(parse_version(mode.tsdb_version)) if mode.timescaledb else None
    stmts = split_statements(read_sql("schema/create_ops_schema.sql"))
    for _table, table_stmts in tables_sql(mode.timescaledb, api):
        stmts += table_stmts
    stmts += split_statements(read_sql(f"schema/{'timescaledb' if mode.timescaledb else 'plain'}/"
                                       "create_aggregates.sql"))
    stmts += split_statements(read_sql("schema/create_roles.sql"))
    return stmts


def _compression_statements(conn: psycopg.Connection, mode: DbMode) -> list[str]:
    """Compression/columnstore settings for hypertables where compression is not enabled yet."""
    api = TimescaleApi(parse_version(mode.tsdb_version or "0"))
    enabled = {
        r[0]
        for r in conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE compression_enabled"
        )
    }
    out = []
    for table in TABLES:
        if table.compression and table.name not in enabled:
            out += compression_sql(table, table.compression, api)
    return out


def _add_missing_rules(conn: psycopg.Connection) -> list[str]:
    """Add the registry's rules a table of an existing database lacks as CHECK constraints (a table created by
    an earlier version). Existing rows that break one keep it from being validated: it is added NOT VALID
    (enforced for every new row), and the note says how many rows break it (the quality checks list them)."""
    present = {(r[0], r[1]) for r in conn.execute(
        "SELECT c.conrelid::regclass::text, c.conname FROM pg_constraint c WHERE c.contype = 'c' "
        "AND c.connamespace = 'public'::regnamespace")}
    notes = []
    for table in TABLES:
        ident = sql.Identifier("public", table.name)
        name = ident.as_string(conn)
        for rule in table.rules:
            if (name, rule.name) in present or (table.name, rule.name) in present:
                continue
            add = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({})").format(
                ident, sql.Identifier(rule.name), sql.SQL(rule.expr))  # registry text, never user input
            try:
                with conn.transaction():
                    conn.execute(add)
                notes.append(f"{table.name}: rule {rule.name} ({rule.text}) added as a CHECK constraint")
            except psycopg.errors.CheckViolation:
                conn.execute(add + sql.SQL(" NOT VALID"))
                broken = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(
                    ident, sql.SQL(rule.expr))).fetchone()[0]
                notes.append(f"{table.name}: rule {rule.name} ({rule.text}) added NOT VALID: {broken:,} existing "
                             "rows break it (new rows are refused; the quality checks list the old ones)")
    return notes


def _set_role_passwords(conn: psycopg.Connection) -> list[str]:
    notes = []
    for role, env in ROLE_PASSWORD_ENV.items():
        password = os.environ.get(env)
        if password:
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))
        else:
            row = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if row and row[0]:
                notes.append(f"role {role} can log in already; its password is left as it is ({env} not set)")
            else:
                notes.append(f"role {role} stays NOLOGIN ({env} not set)")
    return notes


def apply_schema(conn: psycopg.Connection, *, today: date | None = None) -> ApplyResult:
    """Apply the whole target schema on ``conn`` (which must be in autocommit mode)."""
    if not conn.autocommit:
        raise ValueError("apply_schema needs an autocommit connection (extensions go first, alone)")
    started = time.monotonic()
    extensions, notes = ensure_extensions(conn)
    mode = detect_mode(conn)
    if mode.timescaledb and not installed_extension(conn, "timescaledb"):
        raise RuntimeError(
            "the schema was created in TimescaleDB mode but the timescaledb extension is missing: "
            "install it (shared_preload_libraries) before running any DAG against this database"
        )
    if not mode.timescaledb and extensions.get("timescaledb"):
        notes.append("timescaledb is installed, but the schema already exists in plain mode: kept as is")
    statements = rendered_statements(mode)
    checksum = hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()
    created: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        for stmt in statements:
            conn.execute(stmt)
        if mode.timescaledb:
            for stmt in _compression_statements(conn, mode):
                conn.execute(stmt)
        else:
            today = today or date.today()
            horizon = date(today.year + (today.month + PARTITION_MONTHS_AHEAD - 1) // 12,
                           (today.month + PARTITION_MONTHS_AHEAD - 1) % 12 + 1, 1)
            for table in TABLES:
                if table.partitioned:
                    created += partitions.ensure_partitions(conn, table, date(today.year, today.month, 1),
                                                            horizon)
            for view in AGGREGATES:
                populated = conn.execute(
                    "SELECT relispopulated FROM pg_class WHERE oid = %s::regclass", (f"public.{view}",)
                ).fetchone()[0]
                if not populated:
                    conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier("public", view)))
        notes += _add_missing_rules(conn)
        notes += _set_role_passwords(conn)
        last = conn.execute(
            "SELECT checksum FROM ops.schema_version ORDER BY id DESC LIMIT 1").fetchone()
        changed = last is None or last[0] != checksum
        if changed:
            conn.execute(
                "INSERT INTO ops.schema_version (version, checksum, mode, pg_version, tsdb_version, statements)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (SCHEMA_VERSION, checksum, mode.name, mode.pg_version, mode.tsdb_version, len(statements)),
            )
    result = ApplyResult(mode=mode, checksum=checksum, statements=len(statements), changed=changed,
                         seconds=time.monotonic() - started, extensions=extensions,
                         partitions_created=created, notes=notes)
    log.info("Schema %s: %s, %d statements, %s in %.2fs (checksum %s)",
             SCHEMA_VERSION, mode.describe(), len(statements),
             "changes recorded" if changed else "already up to date", result.seconds, checksum[:12])
    for note in notes:
        log.info("Schema note: %s", note)
    return result

"""Render the DDL of the registry's tables for one database mode.

Pure functions of the registry (no I/O), so the rendered text can be checksummed, reviewed and tested
without a database. Identifiers come only from the registry, never from user input.
"""

from __future__ import annotations

from dataclasses import dataclass

from quantdbops.registry import TABLES, Compression, Table

SCHEMA = "public"


@dataclass(frozen=True)
class TimescaleApi:
    """Which TimescaleDB API a server speaks (compression was renamed columnstore in 2.18)."""

    version: tuple[int, ...]

    @property
    def columnstore(self) -> bool:
        return self.version >= (2, 18)

    @property
    def by_range(self) -> bool:
        return self.version >= (2, 13)


def parse_version(text: str) -> tuple[int, ...]:
    """'2.28.1' -> (2, 28, 1); tolerant of suffixes such as '2.18.0-dev'."""
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _q(name: str) -> str:
    # Registry names are lower-case identifiers; quoting keeps reserved words such as "timestamp" safe.
    return '"' + name.replace('"', '""') + '"'


def qualified(table: Table | str) -> str:
    name = table if isinstance(table, str) else table.name
    return f"{SCHEMA}.{_q(name)}"


def _column_sql(table: Table, col_name: str) -> str:
    col = table.column(col_name)
    parts = [_q(col.name), col.sql_type]
    if col.generated:
        parts.append(f"GENERATED ALWAYS AS ({col.generated}) STORED")
    if col.default:
        parts.append(f"DEFAULT {col.default}")
    if col.required or col.name in table.key or col.name == table.surrogate:
        parts.append("NOT NULL")
    return " ".join(parts)


def create_table_sql(table: Table, *, partitioned: bool) -> str:
    """CREATE TABLE IF NOT EXISTS with key, checks and foreign keys inline."""
    lines = _body_lines(table)
    for fk in table.foreign_keys:
        cols = ", ".join(_q(c) for c in fk.columns)
        refs = ", ".join(_q(c) for c in fk.ref_columns)
        lines.append(
            f"CONSTRAINT {fk.name} FOREIGN KEY ({cols}) REFERENCES {qualified(fk.ref_table)} ({refs}) "
            f"ON DELETE {fk.on_delete}"
        )
    body = ",\n    ".join(lines)
    tail = f" PARTITION BY RANGE ({_q(table.time_column)})" if partitioned else ""
    return f"CREATE TABLE IF NOT EXISTS {qualified(table)} (\n    {body}\n){tail}"


def temporary_table_sql(table: Table, name: str) -> str:
    """A temporary table of the table's shape (columns, key, rules; no foreign keys), dropped at commit: what
    a dry run copies into, so PostgreSQL reads every value as the load would make it read it."""
    body = ",\n    ".join(_body_lines(table, constraint_prefix=f"{name}_"))
    return f"CREATE TEMPORARY TABLE {_q(name)} (\n    {body}\n) ON COMMIT DROP"


def _body_lines(table: Table, constraint_prefix: str = "") -> list[str]:
    """Columns, key and CHECK constraints (constraint names prefixed: a temporary copy's must not clash)."""
    lines = [_column_sql(table, c.name) for c in table.columns]
    key_cols = ", ".join(_q(c) for c in table.key)
    if table.surrogate:
        lines.append(f"CONSTRAINT {constraint_prefix}{table.name}_pkey PRIMARY KEY ({_q(table.surrogate)})")
        if table.key != (table.surrogate,):
            lines.append(f"CONSTRAINT {constraint_prefix}{table.name}_natural_key UNIQUE ({key_cols})")
    else:
        lines.append(f"CONSTRAINT {constraint_prefix}{table.name}_pkey PRIMARY KEY ({key_cols})")
    lines += [f"CONSTRAINT {constraint_prefix}{name} CHECK ({expr})" for name, expr in table.checks]
    return lines


def index_sql(table: Table) -> list[str]:
    out = []
    for ix in table.indexes:
        using = f" USING {ix.using}" if ix.using else ""
        where = f" WHERE {ix.where}" if ix.where else ""
        out.append(f"CREATE INDEX IF NOT EXISTS {ix.name} ON {qualified(table)}{using} ({ix.columns}){where}")
    return out


def comment_sql(table: Table) -> str:
    text = table.description.replace("'", "''")
    return f"COMMENT ON TABLE {qualified(table)} IS '{text}'"


def hypertable_sql(table: Table, api: TimescaleApi) -> str:
    """create_hypertable in the server's API (``by_range`` from 2.13), without default indexes."""
    assert table.chunk_interval and table.time_column
    name = f"'{qualified(table)}'"
    interval = f"INTERVAL '{table.chunk_interval}'"
    if api.by_range:
        return (
            f"SELECT create_hypertable({name}, by_range('{table.time_column}', {interval}), "
            "if_not_exists => TRUE, create_default_indexes => FALSE)"
        )
    return (
        f"SELECT create_hypertable({name}, '{table.time_column}', chunk_time_interval => {interval}, "
        "if_not_exists => TRUE, create_default_indexes => FALSE)"
    )


def retention_sql(table: Table) -> str:
    return (
        f"SELECT add_retention_policy('{qualified(table)}', INTERVAL '{table.retention}', "
        "if_not_exists => TRUE)"
    )


def compression_sql(table: Table, comp: Compression, api: TimescaleApi) -> list[str]:
    segment = ",".join(comp.segment_by)
    name = f"'{qualified(table)}'"
    if api.columnstore:
        opts = ["timescaledb.enable_columnstore = TRUE", f"timescaledb.orderby = '{comp.order_by}'"]
        if segment:
            opts.insert(1, f"timescaledb.segmentby = '{segment}'")
        policy = f"CALL add_columnstore_policy({name}, after => INTERVAL '{comp.after}', if_not_exists => TRUE)"
    else:
        opts = ["timescaledb.compress", f"timescaledb.compress_orderby = '{comp.order_by}'"]
        if segment:
            opts.insert(1, f"timescaledb.compress_segmentby = '{segment}'")
        policy = f"SELECT add_compression_policy({name}, INTERVAL '{comp.after}', if_not_exists => TRUE)"
    # Settings are applied only while compression is still off (see apply.py): changing them on a
    # hypertable with compressed chunks is an error, and re-applying identical ones is pointless.
    return [f"ALTER TABLE {qualified(table)} SET ({', '.join(opts)})", policy]


def tables_sql(mode_timescale: bool, api: TimescaleApi | None = None) -> list[tuple[Table, list[str]]]:
    """Per table, the statements that create it (and make it a hypertable) in the given mode.

    Compression settings are returned separately by ``compression_sql`` in TimescaleDB mode because
    they must only run once; everything here is idempotent as written.
    """
    out = []
    for table in TABLES:
        stmts = [create_table_sql(table, partitioned=table.partitioned and not mode_timescale)]
        if mode_timescale and table.partitioned:
            assert api is not None
            stmts.append(hypertable_sql(table, api))
            if table.retention:
                stmts.append(retention_sql(table))
        stmts += index_sql(table)
        stmts.append(comment_sql(table))
        out.append((table, stmts))
    return out

"""Plain-PostgreSQL mode: monthly (or quarterly) range partitions, created as needed.

TimescaleDB creates chunks by itself; native partitioning needs each partition to exist before a row
for it arrives. The migration creates those its source needs, schema apply and the weekly maintenance
create the coming months ahead.
"""

from __future__ import annotations

from datetime import date

from psycopg import Connection, sql

from quantdbops.registry import Table

_MONTHS = {"1 month": 1, "3 months": 3}


def interval_months(table: Table) -> int:
    try:
        return _MONTHS[table.chunk_interval or ""]
    except KeyError:
        raise ValueError(f"{table.name}: unsupported partition interval {table.chunk_interval!r}") from None


def _add_months(d: date, months: int) -> date:
    idx = d.year * 12 + d.month - 1 + months
    return date(idx // 12, idx % 12 + 1, 1)


def partition_bounds(table: Table, first: date, last: date) -> list[tuple[date, date]]:
    """The [start, end) ranges of the partitions covering ``first``..``last`` (both inclusive)."""
    step = interval_months(table)
    # Quarter partitions start in Jan/Apr/Jul/Oct, like TimescaleDB's aligned chunks.
    start = date(first.year, (first.month - 1) // step * step + 1, 1)
    out = []
    while start <= last:
        end = _add_months(start, step)
        out.append((start, end))
        start = end
    return out


def partition_name(table: Table, start: date) -> str:
    return f"{table.name}_p{start:%Y_%m}"


def ensure_partitions(conn: Connection, table: Table, first: date, last: date) -> list[str]:
    """Create the missing partitions of ``table`` for ``first``..``last``; returns the names created.

    Nothing to do where the table is not partitioned (e.g. a hypertable, or a plain table made by hand).
    """
    kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", (f"public.{table.name}",)).fetchone()
    if kind is None or kind[0] != "p":
        return []
    existing = {
        row[0]
        for row in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            (f"public.{table.name}",),
        )
    }
    created = []
    is_ts = table.column(table.time_column or "").kind == "timestamptz"
    for start, end in partition_bounds(table, first, last):
        name = partition_name(table, start)
        if name in existing:
            continue
        lo, hi = (f"{start} 00:00:00+00", f"{end} 00:00:00+00") if is_ts else (str(start), str(end))
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier("public", name), sql.Identifier("public", table.name),
                sql.Literal(lo), sql.Literal(hi),
            )
        )
        created.append(name)
    return created

"""Full-content comparison: the same canonical row text and row hash on both sides.

The source side is computed while the rows stream into COPY (``producer.py`` hashes each COPY line and sums
the first 64 bits of each line's SHA-256 per region and day into ``ops.migration_checksums``). The target side renders
every stored row back into exactly that text in SQL. Equal sums and counts per table, region and month
mean the same rows, whatever their order; a difference is drilled down to the day and then to the rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import sql

from quantdbops.migration.source_plan import (
    ALL_REGIONS,
    COPY_DELIMITER,
    COPY_NULL,
    ESCAPED_NULL_TEXT,
    NO_DAY,
    copy_columns,
)
from quantdbops.registry import Column, Table
from quantdbops.sqlfiles import read_sql

# How the source side rendered and hashed its rows, kept with every checksum row: sums written by another
# version (tab-separated text, md5) cannot be compared with today's target side, and validation says so.
ROW_FORMAT = f"sha256-64 of COPY text, DELIMITER '{COPY_DELIMITER}', NULL '{COPY_NULL}'"


def canonical_expr(col: Column) -> sql.Composable:
    """SQL rendering a stored value as the COPY text the loader sent for it (``plan.COPY_OPTIONS``)."""
    c = sql.Identifier(col.name)
    k = col.kind
    null = sql.Literal(COPY_NULL)
    if k == "text":
        inner = sql.SQL(
            "CASE WHEN {0} = {null} THEN {escaped_null} ELSE replace(replace(replace(replace(replace({0}, "
            "'\\', '\\\\'), E'\\t', '\\t'), E'\\n', '\\n'), E'\\r', '\\r'), {delim}, {escaped_delim}) END"
        ).format(c, null=null, escaped_null=sql.Literal(ESCAPED_NULL_TEXT), delim=sql.Literal(COPY_DELIMITER),
                 escaped_delim=sql.Literal("\\" + COPY_DELIMITER))
    elif k == "bool":
        return sql.SQL("CASE WHEN {0} THEN 't' WHEN NOT {0} THEN 'f' ELSE {1} END").format(c, null)
    elif k == "timestamptz":
        if col.source_tz == "UTC":
            inner = sql.SQL("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'").format(c)
        else:
            inner = sql.SQL("to_char({}, 'YYYY-MM-DD HH24:MI:SS.US')").format(c)
    else:
        inner = sql.SQL("{}::text").format(c)
    return sql.SQL("coalesce({}, {})").format(inner, null)


def row_text_sql(table: Table) -> sql.Composable:
    parts = [canonical_expr(c) for c in copy_columns(table)]
    return sql.SQL("concat_ws({}, {})").format(sql.Literal(COPY_DELIMITER), sql.SQL(", ").join(parts))


_FIELD = re.compile(r"(?:[^\\" + re.escape(COPY_DELIMITER) + r"]|\\.)*", re.S)


def copy_fields(line: str) -> list[str]:
    """A COPY text line cut at its delimiters (an escaped delimiter stays inside its field, as it was sent)."""
    fields, pos = [], 0
    while True:
        m = _FIELD.match(line, pos)
        fields.append(m.group())  # type: ignore[union-attr]  # matches the empty string at worst
        pos = m.end()  # type: ignore[union-attr]
        if pos >= len(line):
            return fields
        pos += 1  # the delimiter


def row_hash_sql(table: Table) -> sql.Composable:
    """Signed 64-bit prefix of sha256(row text), as Python's int.from_bytes(digest[:8], signed=True).

    SHA-256 rather than md5: with the CPU's SHA extensions it is about twice as fast on both sides here.
    """
    return sql.SQL("('x' || encode(substr(sha256(convert_to({}, 'UTF8')), 1, 8), 'hex'))::bit(64)::bigint").format(
        row_text_sql(table))


def _region_expr(table: Table) -> sql.Composable:
    return sql.Identifier("region") if table.has_region else sql.Literal(ALL_REGIONS)


def _day_expr(table: Table) -> sql.Composable:
    if not table.time_column:
        return sql.SQL("{}::date").format(sql.Literal(NO_DAY))
    return sql.SQL("{}::date").format(sql.Identifier(table.time_column))


def target_slice_where(table: Table) -> sql.Composable:
    """The target rows of a load's slices, with parameters %(regions)s, %(start)s and %(end)s (NULL: open)."""
    conds = [sql.SQL("TRUE")]
    if table.has_region:
        conds.append(sql.SQL("region = ANY(%(regions)s)"))
    if table.time_column:
        conds.append(sql.SQL("({0} >= %(start)s OR %(start)s IS NULL) AND ({0} <= %(end)s OR %(end)s IS NULL)")
                     .format(sql.Identifier(table.time_column)))
    return sql.SQL(" AND ").join(conds)


def target_sums_sql(table: Table, *, by: str = "month") -> sql.Composable:
    """Per region and month (or day): rows and hash sum of the target, with filters %(regions)s etc."""
    day = _day_expr(table)
    bucket = sql.SQL("date_trunc('month', {})::date").format(day) if by == "month" else day
    return sql.SQL(read_sql("migration/sum_target_checksums.sql")).format(
        region=_region_expr(table), bucket=bucket, row_hash=row_hash_sql(table),
        table=sql.Identifier("public", table.name), slices=target_slice_where(table))


def source_formats_sql() -> sql.Composable:
    """Row formats of a table's source checksums in the selected slices (NULL: written before row_format), with
    parameters %(table)s, %(regions)s, %(start)s and %(end)s (NULL: open)."""
    return sql.SQL(read_sql("migration/select_checksum_formats.sql"))


def source_sums_sql(*, by: str = "month") -> sql.Composable:
    """Per region and month (or day): rows and hash sum of the source checksums, with the parameters of
    ``source_formats_sql``."""
    bucket = sql.SQL("date_trunc('month', day)::date") if by == "month" else sql.SQL("day")
    return sql.SQL(read_sql("migration/sum_source_checksums.sql")).format(bucket=bucket)


@dataclass(frozen=True)
class BucketDiff:
    region: str
    bucket: str
    source_rows: int
    target_rows: int
    source_sum: int
    target_sum: int


def compare(source: dict[tuple[str, str], tuple[int, int]],
            target: dict[tuple[str, str], tuple[int, int]]) -> list[BucketDiff]:
    """Buckets whose count or hash sum differ (a bucket missing on one side counts as empty)."""
    out = []
    for key in sorted(set(source) | set(target)):
        sn, ss = source.get(key, (0, 0))
        tn, ts = target.get(key, (0, 0))
        if sn != tn or ss != ts:
            out.append(BucketDiff(key[0], key[1], sn, tn, ss, ts))
    return out

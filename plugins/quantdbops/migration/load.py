"""Stream one table from SQLite into PostgreSQL ``COPY``: mapped, checked, quarantined, checksummed.

A table's selected region slices are replaced in ONE transaction: delete (or truncate) the slices, COPY
the rows, write the rejects, the per-day checksums and the run record, commit. A task killed halfway
leaves the previous content untouched, so a re-run always ends in exact parity with no duplicates.
Tables other tables reference (tickers) are merged through a staging table instead of deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import psycopg
from psycopg import sql

from quantdbops import REGIONS
from quantdbops.io.pg import DbMode
from quantdbops.migration.plan import (
    ALL_REGIONS,
    DUPLICATE_KEY,
    UNKNOWN_REGION,
    SliceFilter,
    TablePlan,
)
from quantdbops.registry import LoadMode, Table
from quantdbops.schema import partitions

log = logging.getLogger(__name__)

FETCH_ROWS = 5000
PROGRESS_SECONDS = 5.0


@dataclass
class SliceStats:
    """Counts of one region slice: every source row is either loaded or rejected."""

    source_rows: int = 0
    loaded: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> rows

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())


@dataclass
class TableLoadResult:
    """What a table load did (``as_dict`` is what goes to XCom: metadata only)."""

    table: str
    run_id: str
    dry_run: bool
    regions: dict[str, SliceStats]
    seconds: float
    mode: str
    unknown_columns: list[str] = field(default_factory=list)

    @property
    def source_rows(self) -> int:
        return sum(s.source_rows for s in self.regions.values())

    @property
    def loaded(self) -> int:
        return sum(s.loaded for s in self.regions.values())

    @property
    def rejected(self) -> Counter:
        total: Counter = Counter()
        for s in self.regions.values():
            total.update(s.rejected)
        return total

    @property
    def rows_per_sec(self) -> float:
        return self.source_rows / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "table": self.table, "run_id": self.run_id, "dry_run": self.dry_run, "mode": self.mode,
            "source_rows": self.source_rows, "loaded": self.loaded,
            "rejected": dict(self.rejected), "seconds": round(self.seconds, 3),
            "rows_per_sec": round(self.rows_per_sec), "unknown_columns": self.unknown_columns,
            "regions": {r: {"source_rows": s.source_rows, "loaded": s.loaded, "rejected": dict(s.rejected)}
                        for r, s in sorted(self.regions.items())},
        }


def _plain_number(value: float) -> str:
    """A float as a plain decimal that PostgreSQL's numeric echoes back unchanged (no exponent)."""
    if value == 0:
        return "0.0"
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def render_line(values: tuple) -> str:
    """COPY text of one checked row: SQLite rendered the text columns, ``repr`` renders numbers exactly.

    ``repr`` is the shortest text that reads back as the same double, so no digit is invented or lost;
    its rare exponent form (1e-05) and negative zero are rewritten so numeric echoes the same text.
    """
    line = "\t".join(map(str, values))
    if "e" in line or "-0.0" in line:
        line = "\t".join(_plain_number(v) if type(v) is float else str(v) for v in values)
    return line


class _Checksums:
    """Per (region, day): row count and the sum of each row's 64-bit md5 prefix (order-independent)."""

    def __init__(self) -> None:
        self.rows: Counter = Counter()
        self.sums: defaultdict = defaultdict(int)

    def add(self, region: str, day: str, line: bytes) -> None:
        key = (region, day)
        self.rows[key] += 1
        self.sums[key] += int.from_bytes(hashlib.md5(line).digest()[:8], "big", signed=True)


def _known_tickers(sconn: sqlite3.Connection, pg: psycopg.Connection | None, from_source: bool) -> None:
    """temp.known_tickers: the (ticker, region) pairs a row may reference (the target's tickers)."""
    sconn.execute("DROP TABLE IF EXISTS temp.known_tickers")
    sconn.execute("CREATE TEMP TABLE known_tickers (ticker TEXT, region TEXT, PRIMARY KEY (ticker, region))"
                  " WITHOUT ROWID")
    if from_source or pg is None:
        # Dry runs write nothing, so the target may not hold the tickers yet: use the source's.
        sconn.execute("INSERT OR IGNORE INTO temp.known_tickers SELECT ticker, region FROM main.tickers")
        return
    rows = pg.execute("SELECT ticker, region FROM public.tickers").fetchall()
    sconn.executemany("INSERT OR IGNORE INTO temp.known_tickers VALUES (?, ?)", rows)


def _duplicates(sconn: sqlite3.Connection, plan: TablePlan, flt: SliceFilter) -> dict[int, int]:
    """temp.dup_rows: rows whose mapped key another row already has -> the rowid kept."""
    sconn.execute("DROP TABLE IF EXISTS temp.dup_rows")
    sconn.execute("CREATE TEMP TABLE dup_rows (rowid INTEGER PRIMARY KEY, kept INTEGER)")
    found = plan.collision_sql(flt)
    if found is None:
        return {}
    query, params = found
    sconn.execute(f"INSERT INTO temp.dup_rows {query}", params)
    return dict(sconn.execute("SELECT rowid, kept FROM temp.dup_rows"))


def _count(sconn: sqlite3.Connection, plan: TablePlan, flt: SliceFilter) -> int:
    params: list[object] = []
    where = plan.where(flt, params)
    joins = (f"LEFT JOIN main.tickers t ON t.ticker = s.\"{plan.table.ticker_column}\""
             if plan.table.ticker_column and where else "")
    return sconn.execute(f'SELECT count(*) FROM main."{plan.table.source}" s {joins} {where}', params).fetchone()[0]


def _time_range(sconn: sqlite3.Connection, plan: TablePlan, flt: SliceFilter) -> tuple[date, date] | None:
    """First and last well-formed date of the slice (plain mode creates partitions for them)."""
    expr = plan.time_source_expr()
    if expr is None:
        return None
    params: list[object] = []
    where = plan.where(flt, params)
    glob = f"substr({expr}, 1, 10) GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'"
    where = f"{where} AND {glob}" if where else f"WHERE {glob}"
    joins = (f"LEFT JOIN main.tickers t ON t.ticker = s.\"{plan.table.ticker_column}\""
             if plan.table.ticker_column else "")
    lo, hi = sconn.execute(
        f'SELECT min(substr({expr}, 1, 10)), max(substr({expr}, 1, 10)) FROM main."{plan.table.source}" s '
        f"{joins} {where}", params).fetchone()
    if lo is None:
        return None
    try:
        return date.fromisoformat(lo), date.fromisoformat(hi)
    except ValueError:
        return None  # e.g. '2024-02-30' sorts but is no date: such rows are rejected anyway


def slice_regions(table: Table, flt: SliceFilter) -> list[str]:
    """The region slices a load of ``table`` replaces (target side)."""
    if not table.has_region:
        return [ALL_REGIONS]
    return list(flt.regions) if flt.regions is not None else list(REGIONS)


def _delete_slices(pg: psycopg.Connection, table: Table, flt: SliceFilter) -> str:
    """Remove the target rows the load replaces; TRUNCATE when that is the whole table."""
    ident = sql.Identifier("public", table.name)
    whole = (flt.regions is None or not table.has_region or set(flt.regions) >= set(REGIONS)) \
        and not (flt.start_date or flt.end_date)
    if whole:
        pg.execute(sql.SQL("TRUNCATE {}").format(ident))
        return "truncated"
    conds, params = [], []
    if table.has_region and flt.regions is not None:
        conds.append(sql.SQL("region = ANY(%s)"))
        params.append(list(flt.regions))
    if table.time_column and flt.start_date:
        conds.append(sql.SQL("{} >= %s").format(sql.Identifier(table.time_column)))
        params.append(flt.start_date)
    if table.time_column and flt.end_date:
        conds.append(sql.SQL("{} <= %s").format(sql.Identifier(table.time_column)))
        params.append(flt.end_date)
    where = sql.SQL(" AND ").join(conds) if conds else sql.SQL("TRUE")
    cur = pg.execute(sql.SQL("DELETE FROM {} WHERE {}").format(ident, where), params)
    return f"deleted {cur.rowcount:,} rows"


def _ops_slice_where(table: Table, flt: SliceFilter, regions: list[str], time_col: str) -> tuple[sql.Composed, list]:
    conds = [sql.SQL("table_name = %s"), sql.SQL("region = ANY(%s)")]
    params: list[object] = [table.name, regions]
    if not table.time_column:
        return sql.SQL(" AND ").join(conds), params
    if flt.start_date:
        conds.append(sql.SQL("{} >= %s").format(sql.Identifier(time_col)))
        params.append(flt.start_date.isoformat())
    if flt.end_date:
        conds.append(sql.SQL("{} < %s").format(sql.Identifier(time_col)))
        params.append(date.fromordinal(flt.end_date.toordinal() + 1).isoformat())
    return sql.SQL(" AND ").join(conds), params


def _raw_rows(sconn: sqlite3.Connection, table: str, rowids: list[int]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for i in range(0, len(rowids), 500):
        chunk = rowids[i:i + 500]
        cur = sconn.execute(f'SELECT rowid AS _rowid_, * FROM main."{table}" WHERE rowid IN '
                            f"({', '.join('?' * len(chunk))})", chunk)
        names = [d[0] for d in cur.description]
        for row in cur:
            out[row[0]] = {n: (v.hex() if isinstance(v, bytes) else v) for n, v in zip(names[1:], row[1:])}
    return out


def load_table(
    sconn: sqlite3.Connection,
    pg: psycopg.Connection | None,
    table: Table,
    flt: SliceFilter,
    *,
    run_id: str,
    mode: DbMode,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    progress_seconds: float = PROGRESS_SECONDS,
) -> TableLoadResult:
    """Load (or, dry, only read, map and check) one table's selected slices. ``pg`` is not autocommit."""
    say = progress or log.info
    started = time.monotonic()
    plan = TablePlan(table)
    if pg is not None and pg.autocommit:
        raise ValueError("load_table needs a transactional connection: the slices are replaced atomically")
    if table.ticker_column or table.ticker_refs:
        _known_tickers(sconn, pg, from_source=dry_run)
    dup_kept = _duplicates(sconn, plan, flt)
    query = plan.query(flt, duplicates="temp.dup_rows" if dup_kept else None)
    total = _count(sconn, plan, flt)
    regions = slice_regions(table, flt)
    stats: dict[str, SliceStats] = defaultdict(SliceStats)
    sums = _Checksums()
    rejects: list[tuple[int, str, str, str]] = []  # rowid, region, reason, detail
    say(f"{table.name}: {total:,} source rows to read ({'dry run: nothing is written' if dry_run else mode.name})")

    def stream(write: Callable[[str], None]) -> None:
        done, last = 0, time.monotonic()
        cur = sconn.execute(query.sql, query.params)
        md5 = hashlib.md5
        from_bytes = int.from_bytes
        rows_c, sums_c = sums.rows, sums.sums
        while batch := cur.fetchmany(FETCH_ROWS):
            out = []
            for row in batch:
                region = row[2] or UNKNOWN_REGION
                st = stats[region]
                st.source_rows += 1
                if row[1] is None:
                    line = render_line(row[4:])
                    key = (region, row[3])
                    rows_c[key] += 1
                    sums_c[key] += from_bytes(md5(line.encode()).digest()[:8], "big", signed=True)
                    out.append(line)
                    st.loaded += 1
                else:
                    reason, _, detail = row[1].partition(":")
                    st.rejected[reason] += 1
                    if reason == DUPLICATE_KEY:
                        detail = f"key already loaded from source rowid {dup_kept.get(row[0])}"
                    rejects.append((row[0], region, reason, detail))
            if out:
                write("\n".join(out) + "\n")
            done += len(batch)
            now = time.monotonic()
            if now - last >= progress_seconds:
                rate = done / (now - started)
                eta = (total - done) / rate if rate and total > done else 0.0
                say(f"{table.name}: {done:,}/{total:,} rows ({100 * done / max(total, 1):.0f}%), "
                    f"{rate:,.0f} rows/s, ETA {eta:.0f}s")
                last = now

    if dry_run or pg is None:
        stream(lambda _text: None)
    else:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in query.columns)
        with pg.transaction():
            if not mode.timescaledb and table.partitioned:
                span = _time_range(sconn, plan, flt)
                if span:
                    made = partitions.ensure_partitions(pg, table, *span)
                    if made:
                        say(f"{table.name}: created {len(made)} partitions ({made[0]} .. {made[-1]})")
            with pg.cursor() as cur:
                if table.load_mode is LoadMode.MERGE:
                    cur.execute(sql.SQL("CREATE TEMP TABLE _stage (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP")
                                .format(sql.Identifier("public", table.name)))
                    target = sql.Identifier("_stage")
                else:
                    say(f"{table.name}: replacing slices {', '.join(regions)}: "
                        f"{_delete_slices(pg, table, flt)}")
                    target = sql.Identifier("public", table.name)
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, cols)) as copy:
                    stream(copy.write)
                if table.load_mode is LoadMode.MERGE:
                    _merge(cur, table, query.columns)
            _write_ops(pg, sconn, table, flt, run_id, regions, stats, sums, rejects)
    seconds = time.monotonic() - started
    report = inspect_unknown_columns(sconn, table)
    result = TableLoadResult(table=table.name, run_id=run_id, dry_run=dry_run or pg is None,
                             regions=dict(stats), seconds=seconds, mode=mode.name, unknown_columns=report)
    if not dry_run and pg is not None:
        _record_run(pg, result, flt)
    return result


def _merge(cur: psycopg.Cursor, table: Table, columns: tuple[str, ...]) -> None:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in columns if c not in table.key)
    cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM _stage ON CONFLICT ({}) DO UPDATE SET {}").format(
        sql.Identifier("public", table.name), cols, cols,
        sql.SQL(", ").join(sql.Identifier(c) for c in table.key), updates))


def _write_ops(pg: psycopg.Connection, sconn: sqlite3.Connection, table: Table, flt: SliceFilter,
               run_id: str, regions: list[str], stats: dict[str, SliceStats], sums: _Checksums,
               rejects: list[tuple[int, str, str, str]]) -> None:
    """Rejects and checksums of the slices, replaced in the load's own transaction."""
    slice_regions_all = sorted(set(regions) | set(stats) | {UNKNOWN_REGION})
    where, params = _ops_slice_where(table, flt, slice_regions_all, "time_value")
    pg.execute(sql.SQL("DELETE FROM ops.migration_rejects WHERE ") + where, params)
    where, params = _ops_slice_where(table, flt, slice_regions_all, "day")
    pg.execute(sql.SQL("DELETE FROM ops.migration_checksums WHERE ") + where, params)
    if rejects:
        raw = _raw_rows(sconn, table.source or table.name, [r[0] for r in rejects])
        tsrc = TablePlan(table).time_source_expr()
        time_key = None
        if tsrc:
            col = table.column(table.time_column or "")
            time_key = table.derived.get(col.name) or col.source_column
        with pg.cursor() as cur, cur.copy(
            "COPY ops.migration_rejects (run_id, table_name, region, source_rowid, reason, detail, raw_row, "
            "time_value) FROM STDIN"
        ) as copy:
            for rowid, region, reason, detail in rejects:
                row = raw.get(rowid, {})
                tv = row.get(time_key) if time_key else None
                copy.write_row((run_id, table.name, region, rowid, reason, detail,
                                json.dumps(row, default=str), None if tv is None else str(tv)))
    if sums.rows:
        with pg.cursor() as cur, cur.copy(
            "COPY ops.migration_checksums (table_name, region, day, row_count, checksum, run_id) FROM STDIN"
        ) as copy:
            for (region, day), n in sums.rows.items():
                copy.write_row((table.name, region, day, n, sums.sums[(region, day)], run_id))


def _record_run(pg: psycopg.Connection, result: TableLoadResult, flt: SliceFilter) -> None:
    params = json.dumps({"regions": flt.regions, "start_date": str(flt.start_date or ""),
                         "end_date": str(flt.end_date or "")})
    with pg.transaction():
        for region, st in result.regions.items():
            pg.execute(
                "INSERT INTO ops.migration_runs (run_id, table_name, region, status, source_rows, loaded_rows, "
                "rejected_rows, rejects_by_reason, seconds, rows_per_sec, params, finished_at) "
                "VALUES (%s, %s, %s, 'success', %s, %s, %s, %s, %s, %s, %s, now()) "
                "ON CONFLICT (run_id, table_name, region) DO UPDATE SET status = EXCLUDED.status, "
                "source_rows = EXCLUDED.source_rows, loaded_rows = EXCLUDED.loaded_rows, "
                "rejected_rows = EXCLUDED.rejected_rows, rejects_by_reason = EXCLUDED.rejects_by_reason, "
                "seconds = EXCLUDED.seconds, rows_per_sec = EXCLUDED.rows_per_sec, finished_at = now()",
                (result.run_id, result.table, region, st.source_rows, st.loaded, st.rejected_rows,
                 json.dumps(dict(st.rejected)), round(result.seconds, 3), round(result.rows_per_sec), params),
            )


def inspect_unknown_columns(sconn: sqlite3.Connection, table: Table) -> list[str]:
    """Source columns the registry does not know: reported, never silently carried or dropped."""
    from quantdbops.migration.source import expected_source_columns

    have = [r[1] for r in sconn.execute(f'PRAGMA table_info("{table.source}")')]
    want = expected_source_columns(table)
    return [c for c in have if c not in want]

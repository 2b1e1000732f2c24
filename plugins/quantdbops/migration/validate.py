"""Post-migration validation: row counts, date coverage, rules, NULLs, references, database features,
indexes and sample rows, then a full-content comparison.

Every check returns ``CheckResult`` rows (one per table/region where that makes sense); they all go to
``ops.validation_results`` and into one table in the task log. Any ``fail`` fails the task without
retries: a retry cannot make different data equal.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from quantdbops.io.pg import DbMode
from quantdbops.migration import checksum, provenance
from quantdbops.migration.producer import read_source
from quantdbops.migration.source import source_file
from quantdbops.migration.source_plan import (
    ALL_REGIONS,
    SOURCE_TICKERS,
    UNKNOWN_REGION,
    SliceFilter,
    TablePlan,
    copy_columns,
    slice_regions,
)
from quantdbops.migration.source_queries import find_duplicates, known_tickers
from quantdbops.registry import AGGREGATES, TABLES, Column, LoadMode, RegionRule, Table
from quantdbops.sqlfiles import read_sql

SAMPLE_ROWS = 25
DRILL_DAYS = 3
DRILL_ROWS = 10


@dataclass
class CheckResult:
    check: str
    status: str  # pass | fail | warn | skip
    table: str | None = None
    region: str | None = None
    expected: str = ""
    actual: str = ""
    details: dict = field(default_factory=dict)


def _fmt(n: int) -> str:
    return f"{n:,}"


class Validator:
    """Runs the checks of one migration run on the tables it loaded."""

    def __init__(self, sconn: sqlite3.Connection, pg: psycopg.Connection, tables: list[Table],
                 flt: SliceFilter, mode: DbMode, run_id: str | None = None) -> None:
        self.s = sconn
        self.pg = pg
        self.tables = tables
        self.flt = flt
        self.mode = mode
        self.run_id = run_id
        # how long each family of checks and each table took (seconds), for the task's log
        self.seconds_by_check: dict[str, float] = {}
        self.seconds_by_table: dict[str, float] = {}

    # --- helpers -------------------------------------------------------------------------------
    def _slice_params(self, table: Table) -> dict[str, object]:
        regions = [*slice_regions(table, self.flt), UNKNOWN_REGION]
        dated = table.time_column is not None  # a date range only narrows dated tables (as the load does)
        return {"table": table.name, "regions": regions, "start": self.flt.start_date if dated else None,
                "end": self.flt.end_date if dated else None}

    def _target_where(self, table: Table) -> tuple[sql.Composable, dict[str, object]]:
        return checksum.target_slice_where(table), self._slice_params(table)

    # --- 1. row counts --------------------------------------------------------------------------
    def row_counts(self, table: Table) -> list[CheckResult]:
        plan = TablePlan(table)
        params: list[object] = []
        where = plan.where(self.flt, params)
        joins = plan.source_ticker_join()
        region = plan.slice_region_expr()
        source = dict(self.s.execute(
            f"SELECT coalesce({region}, '{UNKNOWN_REGION}'), count(*) FROM main.\"{table.source}\" s {joins} "
            f"{where} GROUP BY 1", params).fetchall())
        where_t, p = self._target_where(table)
        region_t = sql.Identifier("region") if table.has_region else sql.Literal(ALL_REGIONS)
        target = dict(self.pg.execute(sql.SQL(read_sql("migration/count_target_rows_by_region.sql")).format(
            region=region_t, table=sql.Identifier("public", table.name), slices=where_t), p).fetchall())
        rejected = dict(self.pg.execute(read_sql("migration/count_rejects_by_region.sql"),
                                        {**p, **self._text_range(table)}).fetchall())
        out = []
        for reg in sorted(set(source) | set(target) | set(rejected)):
            if table.has_region and self.flt.regions is not None and reg not in self.flt.regions \
                    and reg != UNKNOWN_REGION and reg not in source:
                continue
            src, tgt, rej = source.get(reg, 0), target.get(reg, 0), rejected.get(reg, 0)
            ok = src == tgt + rej
            details: dict = {"source": src, "target": tgt, "rejected": rej}
            if not ok:
                details.update(self._count_evidence(table, reg, {**p, **self._text_range(table)}))
            out.append(CheckResult("row_counts", "pass" if ok else "fail", table.name, reg,
                                   expected=f"source {_fmt(src)}", actual=f"loaded {_fmt(tgt)} + rejected {_fmt(rej)}",
                                   details=details))
        return out

    def _count_evidence(self, table: Table, region: str, p: dict[str, object]) -> dict[str, object]:
        """Which runs wrote the slice's rejects and its checksums (the rows the load sent): a reject of a run
        that did not load the slice is a stray one."""
        rejects = [{"run_id": r[0], "rows": r[1], "first": r[2].astimezone(UTC).isoformat(timespec="seconds"),
                    "last": r[3].astimezone(UTC).isoformat(timespec="seconds")} for r in self.pg.execute(
            read_sql("migration/select_rejects_by_run.sql"), {**p, "region": region})]
        loaded = [r[0] for r in self.pg.execute(read_sql("migration/select_loading_runs.sql"), {**p, "region": region})]
        return {"rejects_by_run": rejects, "loaded_by_runs": sorted(loaded)}

    def _text_range(self, table: Table) -> dict[str, object]:
        if table.time_column is None:
            return {"start_s": None, "end_s": None}
        end = self.flt.end_date
        return {"start_s": self.flt.start_date.isoformat() if self.flt.start_date else None,
                "end_s": date.fromordinal(end.toordinal() + 1).isoformat() if end else None}

    # --- 2. date coverage -------------------------------------------------------------------------
    def date_coverage(self, table: Table) -> list[CheckResult]:
        if not table.time_column:
            return []
        where, p = self._target_where(table)
        region_t = sql.Identifier("region") if table.has_region else sql.Literal(ALL_REGIONS)
        tc = sql.Identifier(table.time_column)
        coverage = sql.SQL(read_sql("migration/select_target_date_coverage.sql")).format(
            region=region_t, time=tc, table=sql.Identifier("public", table.name), slices=where)
        target = {r[0]: r[1:] for r in self.pg.execute(coverage, p)}
        loaded = {r[0]: r[1:] for r in self.pg.execute(read_sql("migration/select_loaded_date_coverage.sql"), p)}
        out = []
        for reg in sorted(set(target) | set(loaded)):
            t, s = target.get(reg), loaded.get(reg)
            ok = t == s
            fmt = (lambda v: f"{v[0]}..{v[1]} ({v[2]:,} days)" if v else "no rows")
            out.append(CheckResult("date_coverage", "pass" if ok else "fail", table.name, reg,
                                   expected=fmt(s), actual=fmt(t)))
        return out

    # --- 3 and 4. the declared rules and the required columns, one scan per table ----------------------
    def rules(self, table: Table) -> list[CheckResult]:
        """Rows of the slices that break one of the table's rules, or hold NULL in a required column.

        The loader refuses such rows before COPY and the schema's CHECK constraints refuse them too; rows
        here came by another way (an earlier version, a constraint added NOT VALID, an edit)."""
        cols = table.required_columns
        counts = [sql.SQL("count(*) FILTER (WHERE NOT ({}))").format(sql.SQL(r.expr)) for r in table.rules]
        if cols:
            counts.append(sql.SQL("count(*) FILTER (WHERE {})").format(
                sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c)) for c in cols)))
        if not counts:
            return []
        where, params = self._target_where(table)
        found = self.pg.execute(sql.SQL("SELECT {} FROM {} WHERE {}").format(
            sql.SQL(", ").join(counts), sql.Identifier("public", table.name), where), params).fetchone()
        out = [CheckResult("business_rules", "pass" if n == 0 else "fail", table.name, None,
                           expected=f"0 rows break {r.text}", actual=f"{n:,}", details={"rule": r.name})
               for r, n in zip(table.rules, found, strict=False)]
        if cols:
            n = found[-1]
            out.append(CheckResult("required_nulls", "pass" if n == 0 else "fail", table.name, None,
                                   expected=f"0 NULLs in {len(cols)} required columns", actual=f"{n:,}"))
        return out

    # --- 5. referential integrity -------------------------------------------------------------------
    def referential(self, table: Table) -> list[CheckResult]:
        if not (table.ticker_column or table.ticker_refs):
            return []
        conds = []
        if table.ticker_column:
            col = "etf_ticker" if table.ticker_column == "etf_ticker" else "ticker"
            conds.append(sql.SQL("NOT EXISTS (SELECT 1 FROM public.tickers k WHERE k.ticker = x.{} "
                                 "AND k.region = x.region)").format(sql.Identifier(col)))
        for ref in table.ticker_refs:
            conds.append(sql.SQL("NOT EXISTS (SELECT 1 FROM public.tickers k WHERE k.ticker = x.{})")
                         .format(sql.Identifier(ref)))
        where, p = self._target_where(table)
        n = self.pg.execute(sql.SQL("SELECT count(*) FROM {} x WHERE {} AND ({})").format(
            sql.Identifier("public", table.name), where, sql.SQL(" OR ").join(conds)), p).fetchone()[0]
        return [CheckResult("referential", "pass" if n == 0 else "fail", table.name, None,
                            expected="0 rows with an unknown ticker", actual=f"{n:,}")]

    # --- 6. TimescaleDB features (or partitions and views) ------------------------------------------
    def features(self) -> list[CheckResult]:
        partitioned = {t.name for t in TABLES if t.partitioned}
        compressed = {t.name for t in TABLES if t.compression}
        if self.mode.timescaledb:
            rows = dict(self.pg.execute(read_sql("migration/select_hypertables.sql")))
            caggs = {r[0] for r in self.pg.execute(read_sql("migration/select_continuous_aggregates.sql"))}
            got = {"hypertables": set(rows), "compression": {n for n, on in rows.items() if on},
                   "continuous aggregates": caggs}
            want = {"hypertables": partitioned, "compression": compressed, "continuous aggregates": set(AGGREGATES)}
        else:
            kinds = dict(self.pg.execute(read_sql("migration/select_public_relations.sql")))
            got = {"partitioned tables": {n for n, k in kinds.items() if k == "p"},
                   "materialized views": {n for n, k in kinds.items() if k == "m"}}
            want = {"partitioned tables": partitioned, "materialized views": set(AGGREGATES)}
        out = []
        for name, expected in want.items():
            missing = sorted(expected - got[name])
            out.append(CheckResult("features", "pass" if not missing else "fail", None, None,
                                   expected=f"{len(expected)} {name}",
                                   actual=f"{len(expected) - len(missing)} present"
                                   + (f"; missing {', '.join(missing)}" if missing else "")))
        return out

    # --- 7. indexes ---------------------------------------------------------------------------------
    def indexes(self) -> list[CheckResult]:
        present = {r[0] for r in self.pg.execute(read_sql("migration/select_public_indexes.sql"))}
        # Every index must be valid, and a partitioned table's index must exist on each partition.
        broken = {r[0]: r[1] for r in self.pg.execute(read_sql("migration/count_broken_indexes.sql"))}
        out = []
        for table in self.tables:
            want = {ix.name for ix in table.indexes} | {f"{table.name}_pkey"}
            missing = sorted(want - present)
            bad = broken.get(table.name, 0)
            actual = "all present and valid" if not missing and not bad else "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"{bad} invalid or not on every partition"] if bad else []))
            out.append(CheckResult("indexes", "pass" if not missing and not bad else "fail", table.name, None,
                                   expected=f"{len(want)} valid indexes", actual=actual))
        return out

    # --- 8. sample rows, column by column from the raw source values --------------------------------
    def sample_rows(self, table: Table) -> list[CheckResult]:
        lo, hi = self.s.execute(f'SELECT min(rowid), max(rowid) FROM main."{table.source}"').fetchone()
        if lo is None:
            return [CheckResult("sample_rows", "skip", table.name, None, expected="rows", actual="empty source")]
        step = max(1, (hi - lo) // (SAMPLE_ROWS * 2))
        wanted = list(range(lo, hi + 1, step))[: SAMPLE_ROWS * 2]
        rejected = {r[0] for r in self.pg.execute(read_sql("migration/select_rejected_rowids.sql"),
                                                  (table.name, wanted))}
        marks = ",".join("?" * len(wanted))
        cur = self.s.execute(f'SELECT rowid, * FROM main."{table.source}" WHERE rowid IN ({marks})', wanted)
        names = [d[0] for d in cur.description][1:]
        tickers = dict(self.s.execute(f"SELECT ticker, region FROM {SOURCE_TICKERS}")) if table.ticker_column else {}
        compared, diffs = 0, []
        for raw in cur.fetchall():
            if raw[0] in rejected or compared >= SAMPLE_ROWS:
                continue
            src = dict(zip(names, raw[1:], strict=True))
            try:
                expected = self._expected_values(table, src, tickers)
            except (ValueError, TypeError, ArithmeticError) as exc:  # unloadable yet not quarantined
                compared += 1
                diffs.append({"rowid": raw[0], "problem": f"source row is not loadable ({exc}) but is not in "
                                                          "ops.migration_rejects"})
                continue
            if expected is None or not self._in_slice(table, expected):
                continue
            key = {k: expected[k] for k in table.key}
            cols = list(expected)
            q = sql.SQL("SELECT {} FROM {} WHERE {}").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in cols), sql.Identifier("public", table.name),
                sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key))
            row = self.pg.execute(q, list(key.values())).fetchone()
            compared += 1
            if row is None:
                diffs.append({"rowid": raw[0], "key": {k: str(v) for k, v in key.items()}, "problem": "missing"})
                continue
            for c, got in zip(cols, row, strict=True):
                if got != expected[c]:
                    diffs.append({"rowid": raw[0], "column": c, "source": str(expected[c]), "target": str(got)})
        return [CheckResult("sample_rows", "pass" if not diffs else "fail", table.name, None,
                            expected=f"{compared} sampled rows equal", actual=f"{len(diffs)} differences",
                            details={"differences": diffs[:DRILL_ROWS]})]

    def _in_slice(self, table: Table, values: dict) -> bool:
        if table.has_region and self.flt.regions is not None and values.get("region") not in self.flt.regions:
            return False
        if table.time_column and values.get(table.time_column) is not None:
            d = values[table.time_column]
            d = d.date() if isinstance(d, datetime) else d
            if (self.flt.start_date and d < self.flt.start_date) or (self.flt.end_date and d > self.flt.end_date):
                return False
        return True

    @staticmethod
    def _expected_values(table: Table, src: dict, tickers: dict) -> dict | None:
        """The target values a source row must have become, computed here independently of the loader."""
        out = {}
        for col in table.loaded_columns:
            if col.name == "region" and table.has_region:
                v = src.get("region") if table.region_rule in (RegionRule.COLUMN, RegionRule.COLUMN_OR_TICKER) else None
                v = v or tickers.get(src.get(table.ticker_column or ""))
            elif col.name in table.derived:
                v = (src[table.derived[col.name]] or "")[:10]
            else:
                v = src.get(col.source_column or col.name)
                mapped = dict(col.value_map)
                v = mapped.get(v, v) if isinstance(v, str) else v
            out[col.name] = _convert(col, v)
        return out

    # --- 9. full content: checksums per table, region, month; drill-down on a mismatch --------------
    def content(self, table: Table) -> list[CheckResult]:
        p = self._slice_params(table)
        if not table.has_region:
            p["regions"] = [ALL_REGIONS]
        formats = [f for (f,) in self.pg.execute(checksum.source_formats_sql(), p)]
        others = sorted(f or "unrecorded (before row_format)" for f in formats if f != checksum.ROW_FORMAT)
        if others:
            # Sums of another rendering cannot be compared: reloading writes them afresh.
            return [CheckResult("checksum_format", "fail", table.name, None,
                                expected=f"source checksums in this version's row format ({checksum.ROW_FORMAT})",
                                actual=f"written by an earlier version: {'; '.join(others)}",
                                details={"formats": others})]
        src = {(r[0], str(r[1])): (int(r[2]), int(r[3])) for r in self.pg.execute(checksum.source_sums_sql(), p)}
        tgt = {(r[0], str(r[1])): (int(r[2]), int(r[3])) for r in self.pg.execute(checksum.target_sums_sql(table), p)}
        diffs = checksum.compare(src, tgt)
        months = len(set(src) | set(tgt))
        if not diffs:
            return [CheckResult("content_checksum", "pass", table.name, None,
                                expected=f"{months} region-months equal",
                                actual=f"{sum(n for n, _ in tgt.values()):,} rows, all equal")]
        details: dict = {"months": [d.__dict__ for d in diffs[:20]], "rows": self.drill_down(table, diffs)}
        if table.load_mode is LoadMode.MERGE:
            details.update(self._leftover_evidence(table, details["rows"]))
        undated = table.time_column is None
        what = "regions" if undated else "region-months"
        return [CheckResult("content_checksum", "fail", table.name, None,
                            expected=f"{months} {what} equal",
                            actual=f"{len(diffs)} {what} differ: "
                            + ", ".join(f"{d.region}{'' if undated else ' ' + d.bucket[:7]} (source {d.source_rows:,} "
                                        f"/ target {d.target_rows:,} rows)" for d in diffs[:5]),
                            details=details)]

    def _leftover_evidence(self, table: Table, rows: list[dict]) -> dict[str, object]:
        """For rows of a merged table the source lacks: the run (and its file) that last wrote each, and this
        run's file."""
        extra = [r for r in rows if r.get("problem", "").startswith("in target, not in source")]
        keys = [tuple(str(r["key"][k]) for k in table.key) for r in extra]
        wrote = provenance.writers(self.pg, table, keys)
        known = provenance.runs(self.pg, sorted({*wrote.values(), *([self.run_id] if self.run_id else [])}))
        current = known.get(self.run_id) if self.run_id else None
        leftovers = []
        for key in keys:
            writer = known.get(wrote.get(key, ""))
            leftovers.append({"key": dict(zip(table.key, key, strict=True)), "run_id": wrote.get(key),
                              "source": writer.source if writer else None,
                              "sha256": writer.sha256 if writer else None,
                              "written_at": writer.recorded_at.astimezone(UTC).isoformat(timespec="seconds")
                              if writer else None})
        return {"leftovers": leftovers,
                "current_source": {"source": current.source, "sha256": current.sha256} if current else None}

    def drill_down(self, table: Table, month_diffs: list[checksum.BucketDiff]) -> list[dict]:
        """Days that differ inside the differing months, then the rows that differ on those days."""
        p = self._slice_params(table)
        if not table.has_region:
            p["regions"] = [ALL_REGIONS]
        bad_months = {(d.region, d.bucket[:7]) for d in month_diffs}
        src = {(r[0], str(r[1])): (int(r[2]), int(r[3]))
               for r in self.pg.execute(checksum.source_sums_sql(by="day"), p)}
        tgt = {(r[0], str(r[1])): (int(r[2]), int(r[3]))
               for r in self.pg.execute(checksum.target_sums_sql(table, by="day"), p)}
        days = [d for d in checksum.compare(src, tgt) if (d.region, d.bucket[:7]) in bad_months][:DRILL_DAYS]
        out: list[dict] = []
        for d in days:
            out += self._row_diff(table, d.region, d.bucket)
        return out

    def _row_diff(self, table: Table, region: str, day: str) -> list[dict]:
        cols = [c.name for c in copy_columns(table)]
        key_pos = [cols.index(k) for k in table.key]
        has_day = table.time_column is not None
        d = date.fromisoformat(day) if has_day else None
        flt = SliceFilter(regions=(region,) if table.has_region else None, start_date=d, end_date=d)
        # The source rows of that day, rendered by the loader's own producer (checks included).
        known = known_tickers(self.s, self.pg, from_source=False) if (table.ticker_column or table.ticker_refs) \
            else None
        dups = find_duplicates(self.s, TablePlan(table), flt)
        chunks: list[bytes] = []
        read_source(source_file(self.s), table.name, flt, None, known, dups, chunks.append)
        source = {}
        for line in b"".join(chunks).decode().splitlines():
            parts = checksum.copy_fields(line)
            if not has_day or parts[cols.index(table.time_column)][:10] == day:
                source[tuple(parts[i] for i in key_pos)] = parts
        where = [sql.SQL("TRUE")]
        params: list[object] = []
        if table.has_region:
            where.append(sql.SQL("region = %s"))
            params.append(region)
        if has_day:
            where.append(sql.SQL("{}::date = %s").format(sql.Identifier(table.time_column)))
            params.append(d)
        target = {}
        for (text,) in self.pg.execute(sql.SQL("SELECT {} FROM {} WHERE {}").format(
                checksum.row_text_sql(table), sql.Identifier("public", table.name), sql.SQL(" AND ").join(where)),
                params):
            parts = checksum.copy_fields(text)
            target[tuple(parts[i] for i in key_pos)] = parts
        out = []
        for key in sorted(set(source) | set(target)):
            s, t = source.get(key), target.get(key)
            if s == t:
                continue
            entry = {"region": region, "key": dict(zip(table.key, key, strict=True))}
            if has_day:
                entry["day"] = day
            if t is None:
                entry["problem"] = "in source, missing in target"
            elif s is None:
                entry["problem"] = "in target, not in source (or rejected)"
            else:
                entry["problem"] = "values differ"
                entry["columns"] = {c: {"source": a, "target": b} for c, a, b in zip(cols, s, t, strict=True) if a != b}
            out.append(entry)
            if len(out) >= DRILL_ROWS:
                break
        return out

    # --- all ---------------------------------------------------------------------------------------
    def run(self) -> list[CheckResult]:
        results: list[CheckResult] = []
        first = (("row_counts", self.row_counts), ("date_coverage", self.date_coverage),
                 ("business_rules", self.rules), ("referential", self.referential))
        for table in self.tables:
            for label, check in first:
                results += self._timed(label, check, table)
        results += self._timed("features", self.features)
        results += self._timed("indexes", self.indexes)
        for table in self.tables:
            results += self._timed("sample_rows", self.sample_rows, table)
            results += self._timed("content_checksum", self.content, table)
        return results

    def _timed(self, label: str, check: Callable[..., list[CheckResult]], table: Table | None = None
               ) -> list[CheckResult]:
        """``check(table)`` (``check()`` for a check of the whole database), its seconds added to its family's
        (``label``) and to its table's."""
        started = time.monotonic()
        out = check() if table is None else check(table)
        seconds = time.monotonic() - started
        self.seconds_by_check[label] = self.seconds_by_check.get(label, 0.0) + seconds
        if table is not None:
            self.seconds_by_table[table.name] = self.seconds_by_table.get(table.name, 0.0) + seconds
        return out


def _convert(col: Column, v: object) -> object:
    if v is None:
        return None
    k = col.kind
    if k == "numeric":
        return Decimal(repr(v)) if isinstance(v, float) else Decimal(v)  # type: ignore[arg-type]
    if k in ("int", "bigint"):
        return int(v)  # type: ignore[arg-type]
    if k == "bool":
        return bool(v)
    if k == "date":
        return date.fromisoformat(str(v))
    if k == "timestamptz":
        tz = ZoneInfo(col.source_tz)
        return datetime.fromisoformat(str(v).replace(" ", "T")).replace(tzinfo=tz)
    return str(v)


def record_results(pg: psycopg.Connection, run_id: str, results: list[CheckResult]) -> None:
    with pg.transaction(), pg.cursor() as cur, cur.copy(read_sql("migration/copy_validation_results.sql")) as copy:
        for r in results:
            copy.write_row((run_id, r.check, r.table, r.region, r.status, r.expected, r.actual,
                            json.dumps(r.details, default=str)))


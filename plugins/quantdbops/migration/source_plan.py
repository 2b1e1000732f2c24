"""The SQLite side of a table's load: one query that maps, checks and renders every source row.

The query is generated from the registry, never from user text. Each row comes back as
``(rowid, reason, slice, text, t1 .. tj, n1 .. nk)`` where ``reason`` is NULL for a row SQLite finds
loadable (else ``'<reason>:<column or constraint>'``), ``slice`` the region the row is filed under (NULL when
none is found), ``text`` is every text and boolean target column
already rendered and escaped for PostgreSQL's COPY text format (see ``COPY_OPTIONS``), ``t1 .. tj``
are the date and timestamp columns as stored and ``n1 .. nk`` the numeric columns as SQLite numbers. The
producer checks and renders those two groups in Python: dates once per distinct value, timestamps a batch
at a time (``produce.TimestampColumn``), numbers a whole batch at a time (exact shortest round-trip digits), with a
batch-level look for the rare text or blob in a numeric column. The COPY column order is therefore: text
part, dates and timestamps, numbers (``copy_columns``), on both checksum sides. Every reason, wherever it is found,
has one place in ``SourceQuery.reasons``: a row with several defects is reported by the first.

Checking happens before COPY because PostgreSQL silently accepts malformed input: 'YYYY/MM/DD' becomes a
date, 'DD-MM-YYYY' (day <= 12) a different date, 'NaN' a number. Whatever PostgreSQL would refuse or misread
is refused here first, with its reason, so COPY never aborts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from quantdbops import REGIONS
from quantdbops.registry import (
    INVALID_VALUE,
    MALFORMED_DATE,
    MALFORMED_TIMESTAMP,
    ORPHAN_NOT_LOADED,
    ORPHAN_OTHER_REGION,
    ORPHAN_UNKNOWN,
    Column,
    DeclaredRule,
    RegionRule,
    Table,
    declared_rules,
)

# Not a reason: the row's numbers add up to no finite value, so one of them may be an infinity (which JSON
# would write as null); the producer looks at each value (a huge but finite sum is kept, as it should be).
LOOK_AT_NUMBERS = "?numbers"

UNKNOWN_REGION = "UNKNOWN"  # slice of rows whose region cannot be found (orphans): all rejected
ALL_REGIONS = "ALL"  # the single slice of market-wide tables
NO_DAY = "0001-01-01"  # checksum bucket of tables without a time column



def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class SliceFilter:
    """Which source rows a load reads: regions (None = all) and an inclusive date range."""

    regions: tuple[str, ...] | None = None
    start_date: date | None = None
    end_date: date | None = None


# The COPY text format of the load: comma-separated, NULL spelled as JSON spells it, so a batch of numbers
# rendered by orjson is COPY text once its brackets are cut (no pass over the bytes to replace anything).
# A text value equal to the NULL marker or holding the delimiter is escaped (``escape_copy_text``; the
# checksum's ``canonical_expr`` renders stored rows the same way). PostgreSQL matches the marker against the
# raw field, before backslashes are read, so the escaped ``nul\l`` is the text 'null', never NULL.
COPY_DELIMITER = ","
COPY_NULL = "null"
COPY_OPTIONS = f"(FORMAT text, DELIMITER '{COPY_DELIMITER}', NULL '{COPY_NULL}')"
ESCAPED_NULL_TEXT = "nul\\l"

NUMERIC_KINDS = ("int", "bigint", "numeric")
# Checked and rendered by the producer (``produce.calendar_column``); the reason when a value is malformed.
CALENDAR_REASONS = {"date": MALFORMED_DATE, "timestamptz": MALFORMED_TIMESTAMP}
CALENDAR_KINDS = tuple(CALENDAR_REASONS)
INT_RANGE = (-(2**31), 2**31 - 1)  # PostgreSQL integer


def copy_columns(table: Table) -> tuple[Column, ...]:
    """The loaded columns in COPY order: the SQLite-rendered text part, dates and timestamps, numbers."""
    cols = table.loaded_columns
    return (tuple(c for c in cols if c.kind not in NUMERIC_KINDS + CALENDAR_KINDS)
            + tuple(c for c in cols if c.kind in CALENDAR_KINDS)
            + tuple(c for c in cols if c.kind in NUMERIC_KINDS))


def escape_copy_text(expr: str) -> str:
    """COPY text escaping of a value (backslash first, then tab, newline, CR and the delimiter; the NULL
    marker's own spelling escaped). Most values need none: one GLOB looks first."""
    return (f"CASE WHEN {expr} GLOB {_NEEDS_ESCAPE} THEN replace(replace(replace(replace(replace({expr}, "
            f"'\\', '\\\\'), char(9), '\\t'), char(10), '\\n'), char(13), '\\r'), {_lit(COPY_DELIMITER)}, "
            f"{_lit(chr(92) + COPY_DELIMITER)}) WHEN {expr} = {_lit(COPY_NULL)} THEN {_lit(ESCAPED_NULL_TEXT)} "
            f"ELSE {expr} END")


# '*[<backslash><tab><newline><cr><delimiter>]*': a constant SQLite computes once per statement.
_NEEDS_ESCAPE = f"('*[' || char(92, 9, 10, 13, {ord(COPY_DELIMITER)}) || ']*')"
_PLAIN_LITERAL = re.compile(r"'[A-Za-z0-9 ._:/+-]*'")
_REGION_LIST = ", ".join(_lit(r) for r in REGIONS)


# The source's tickers, one row per ticker: the first written where a file without its key repeats one. Every
# query that finds a row's ticker in the source joins this, as the producers' lookup does.
SOURCE_TICKERS = ("(SELECT ticker, region FROM main.tickers WHERE rowid IN "
                  "(SELECT min(rowid) FROM main.tickers GROUP BY ticker))")


def canonical_region(expr: str) -> str:
    """The region ``expr`` spells (any case, surrounding spaces), NULL when it spells none.

    A rejected row is filed under it, so the load that replaces that region's slice clears it again whatever
    spelling the source row carried."""
    return (f"CASE WHEN {expr} IN ({_REGION_LIST}) THEN {expr} WHEN upper(trim({expr})) IN ({_REGION_LIST}) "
            f"THEN upper(trim({expr})) END")


def vocabulary(expr: str) -> tuple[str, tuple[str, ...]] | None:
    """(column, values) of a rule that limits a column to literals COPY needs no escaping for
    (``region IN ('KR', ..)``); None for any other rule."""
    m = re.fullmatch(r"([a-z_][a-z0-9_]*) IN \((.*)\)", expr.strip())
    literals = [lit.strip() for lit in m.group(2).split(",")] if m else []
    if m and all(_PLAIN_LITERAL.fullmatch(lit) and lit != _lit(COPY_NULL) for lit in literals):
        return m.group(1), tuple(lit[1:-1] for lit in literals)
    return None


def vocabularies(table: Table) -> dict[str, tuple[str, ...]]:
    """The table's text columns a rule limits to plain literals (``vocabulary``), with those values."""
    return dict(found for _, expr in table.checks if (found := vocabulary(expr)) is not None)


def vocabulary_columns(table: Table) -> frozenset[str]:
    """The columns of ``vocabularies``."""
    return frozenset(vocabularies(table))


@dataclass(frozen=True)
class SourceQuery:
    sql: str
    params: tuple[object, ...]
    columns: tuple[str, ...]  # the target columns in COPY order (see copy_columns)
    text_columns: int  # how many of them SQLite rendered into the text part
    calendar: tuple[tuple[str, str, bool], ...]  # (column, kind, stored in UTC): dates and timestamps, in order
    reasons: tuple[str, ...]  # every reject reason in report order: a row is reported by its first
    safe: bool = False  # text in date, timestamp and numeric columns comes as bytes (see TablePlan.query)


class TablePlan:
    """How one registry table is read from the source file.

    ``text_as_blob``: the text part comes back as bytes, exactly as stored (a UTF-8 source), so a value
    that is no valid UTF-8 reaches the producer, which quarantines it, instead of failing the read.
    """

    def __init__(self, table: Table, *, known_tickers: str = "temp.known_tickers",
                 ticker_lookup: str = "temp.ticker_lookup", text_as_blob: bool = True) -> None:
        if not table.source:
            raise ValueError(f"{table.name} has no source table: nothing to migrate")
        self.table = table
        self.known = known_tickers
        self.lookup = ticker_lookup
        self.text_as_blob = text_as_blob
        self.columns = table.loaded_columns
        self.copy_columns = copy_columns(table)
        self.vocabularies = vocabularies(table)
        self.vocabulary_columns = frozenset(self.vocabularies)
        self.rules = declared_rules(table)

    # --- expressions over the source row ``s`` and the source tickers row ``t`` ----------------------
    def region_expr(self) -> str:
        """The region value a row is loaded with (a rule checks it)."""
        rule = self.table.region_rule
        if rule is RegionRule.COLUMN:
            return "s.region"
        if rule is RegionRule.COLUMN_OR_TICKER:
            return "coalesce(s.region, t.region)"
        if rule is RegionRule.TICKER:
            return "t.region"
        return _lit(ALL_REGIONS)

    def slice_region_expr(self) -> str:
        """The region slice a row belongs to: its own region in any spelling, else its ticker's; NULL when
        neither names a region (such rows are rejected and filed under UNKNOWN_REGION). A loaded row's slice
        is the region it is loaded with."""
        rule = self.table.region_rule
        if rule is RegionRule.GLOBAL:
            return _lit(ALL_REGIONS)
        ticker_region = canonical_region("t.region") if self.table.ticker_column else None
        if rule is RegionRule.TICKER:
            return ticker_region or "NULL"
        own = canonical_region("s.region")
        return f"coalesce({own}, {ticker_region})" if ticker_region else own

    def raw_expr(self, col: Column) -> str:
        """The mapped (not yet checked) value of a target column."""
        if col.name == "region" and self.table.has_region:
            return self.region_expr()
        if col.name in self.table.derived:
            return f"substr(s.{_ident(self.table.derived[col.name])}, 1, 10)"
        expr = f"s.{_ident(col.source_column or col.name)}"
        if col.value_map:
            # The values the column's rule allows come first, as themselves: a row already spelled right (nearly
            # every row) leaves the CASE at its first comparisons instead of after every other spelling.
            mapped = {a for a, _ in col.value_map}
            same = [(v, v) for v in self.vocabularies.get(col.name, ()) if v not in mapped]
            whens = " ".join(f"WHEN {_lit(a)} THEN {_lit(b)}" for a, b in (*same, *col.value_map))
            expr = f"CASE {expr} {whens} ELSE {expr} END"
        return expr

    def time_source_expr(self) -> str | None:
        """The source expression of the table's time column (for date filters and checksum months)."""
        if not self.table.time_column:
            return None
        return self.raw_expr(self.table.column(self.table.time_column))

    def _type_condition(self, col: Column, v: str) -> str | None:
        """SQL true for a value of the column's kind; None where the producer checks it in Python.

        Numbers (a text or blob among them shows in the batch's JSON; a row that may hold an infinity is
        flagged by ``_finite_condition``), dates and timestamps (``produce.render_date`` /
        ``render_timestamp``, a batch or a distinct value at a time) and the text of a text column (a NUL byte
        or invalid UTF-8, looked for in the batch's bytes) are checked in Python; SQLite refuses the rest:
        integers out of range or not integers, booleans other than 0/1, a blob where text belongs.
        """
        k = col.kind
        if k in ("int", "bigint"):
            rng = f" AND {v} BETWEEN {INT_RANGE[0]} AND {INT_RANGE[1]}" if k == "int" else ""
            return f"({v} IS NULL OR (typeof({v}) = 'integer'{rng}))"
        if k == "bool":
            return f"({v} IS NULL OR {v} IN (0, 1))"
        if k == "text":
            return f"typeof({v}) <> 'blob'"
        return None

    def _condition(self, rule: DeclaredRule, duplicates: str | None) -> str | None:
        """SQL true for a row that keeps ``rule``; None: checked in Python (or nothing to check)."""
        if rule.kind == "required":
            return f"{_ident('m_' + rule.column)} IS NOT NULL"
        if rule.kind == "type":
            return self._type_condition(self.table.column(rule.column), _ident("m_" + rule.column))
        if rule.kind == "rule":
            # A rule fails only when false (NULL passes), as a CHECK in PostgreSQL.
            listed = vocabulary(rule.rule.expr)
            if listed is not None and listed[0] in self.table.column_names:
                # The same test as ``col IN (..) IS NOT 0`` spelled as comparisons in a row: SQLite looks a
                # literal list of more than two values up in a temporary index, which costs more per row.
                v = _ident("m_" + listed[0])
                whens = " ".join(f"WHEN {_lit(value)} THEN 1" for value in listed[1])
                return f"CASE {v} {whens} ELSE {v} IS NULL END"
            return f"({self._rename(rule.rule.expr)}) IS NOT 0"
        if rule.kind == "orphan":
            return self._orphan_conditions()[rule.detail]
        return f"_rowid NOT IN (SELECT rowid FROM {duplicates})" if duplicates else None

    def render_expr(self, col: Column, v: str) -> str:
        """A text-part value as COPY text (NULL is written as ``COPY_NULL`` by the caller)."""
        k = col.kind
        if k == "bool":
            return f"CASE {v} WHEN 1 THEN 't' WHEN 0 THEN 'f' END"
        if k == "text":
            if col.name in self.vocabulary_columns:
                return v  # a loadable row holds one of the rule's plain literals: nothing to escape
            return escape_copy_text(f"CAST({v} AS TEXT)")
        return v

    def text_expr(self, col: Column) -> str:
        """A text-part column as COPY text, the NULL marker for NULL. A loadable row's ticker is one the target
        has, rendered once in the lookup (``produce.prepare_source``): only other rows render theirs."""
        v = _ident("m_" + col.name)
        rendered = self.render_expr(col, v)
        tcol = self.table.ticker_column
        if (col.name == tcol and col.kind == "text" and col.source_column in (None, tcol) and not col.value_map
                and col.name not in self.table.derived and col.name not in self.vocabulary_columns):
            rendered = f"CASE WHEN _t_known IS 1 THEN _t_text ELSE {rendered} END"
        return f"ifnull({rendered}, {_lit(COPY_NULL)})"

    def source_ticker_join(self) -> str:
        """The join that finds a source row's ticker (alias ``t``) where the lookup table is not there."""
        tcol = self.table.ticker_column
        return f"LEFT JOIN {SOURCE_TICKERS} t ON t.ticker = s.{_ident(tcol)}" if tcol else ""

    def joins(self) -> str:
        out = []
        tcol = self.table.ticker_column
        if tcol:
            # One seek per row: the source ticker's region and whether the target has (ticker, that region).
            # A row whose own region differs from its ticker's is an orphan before the target is asked.
            out.append(f"LEFT JOIN {self.lookup} t ON t.ticker = s.{_ident(tcol)}")
        for i, ref in enumerate(self.table.ticker_refs):
            out.append(f"LEFT JOIN {self.known} k{i + 2} ON k{i + 2}.ticker = s.{_ident(ref)}")
        return "\n".join(out)

    def where(self, flt: SliceFilter, params: list[object], rowid_range: tuple[int, int] | None = None) -> str:
        conds = []
        if rowid_range is not None:
            conds.append("s.rowid BETWEEN ? AND ?")
            params.extend(rowid_range)
        if flt.regions is not None and self.table.has_region:
            marks = ", ".join("?" for _ in flt.regions)
            region = self.slice_region_expr()
            # Rows whose region cannot be found belong to no region: they are read (and rejected as
            # orphans) whatever regions were asked for, so nothing is passed over silently.
            conds.append(f"({region} IN ({marks}) OR {region} IS NULL)")
            params.extend(flt.regions)
        tsrc = self.time_source_expr()
        if tsrc and flt.start_date:
            conds.append(f"{tsrc} >= ?")
            params.append(flt.start_date.isoformat())
        if tsrc and flt.end_date:
            # Timestamps compare as text: anything on the end date sorts before the next day.
            conds.append(f"{tsrc} < ?")
            params.append(date.fromordinal(flt.end_date.toordinal() + 1).isoformat())
        return ("WHERE " + " AND ".join(conds)) if conds else ""

    def query(self, flt: SliceFilter, *, duplicates: str | None = None,
              rowid_range: tuple[int, int] | None = None, safe: bool = False) -> SourceQuery:
        """The streaming query, in rowid order; ``duplicates`` names a temp table of rowids to reject as key
        collisions. ``safe``: text stored in a date, timestamp or numeric column comes back as bytes (and a
        blob in a date or timestamp column as 0), so that no value can fail the read by not being UTF-8;
        the producer switches to it from the rowid where the fast query met such a value."""
        inner = ["s.rowid AS _rowid"]
        inner += [f"{self.raw_expr(c)} AS {_ident('m_' + c.name)}" for c in self.columns]
        inner.append(f"{self.slice_region_expr()} AS _slice")
        every = [(self._condition(r, duplicates), r) for r in self.rules]
        conds = [(c, r.label) for c, r in every if c is not None]
        # Fast path: one AND of the conditions (less those another one implies); only a row that fails it
        # evaluates the per-reason CASE.
        implied = self._implied_text_checks()
        finite = self._finite_condition()
        fast = [c for c, r in every if c is not None and not (r.kind == "type" and r.column in implied)]
        fast += [finite] if finite else []
        reason = ("CASE WHEN " + " AND ".join(fast) + " THEN NULL ELSE CASE "
                  + " ".join(f"WHEN NOT {c} THEN {_lit(r)}" for c, r in conds)
                  + (f" WHEN ({finite}) IS NOT 1 THEN {_lit(LOOK_AT_NUMBERS)}" if finite else "")
                  + f" ELSE '{INVALID_VALUE}:row' END END"
                  if fast else "NULL")
        # The region slice: a region's name, ALL or NULL, text (ASCII) whatever the source row holds. With the
        # time column's day (``TablePlan.day_column``), the checksum bucket of a loaded row.
        outer = ["_rowid", reason + " AS _reason", "_slice"]
        texts = [c for c in self.copy_columns if c.kind not in NUMERIC_KINDS + CALENDAR_KINDS]
        stamps = [c for c in self.copy_columns if c.kind in CALENDAR_KINDS]
        numbers = [c for c in self.copy_columns if c.kind in NUMERIC_KINDS]
        text_part = f" || {_lit(COPY_DELIMITER)} || ".join(map(self.text_expr, texts)) or "''"
        if self.text_as_blob or safe:
            text_part = f"CAST({text_part} AS BLOB)"
        outer.append(text_part + " AS _text")
        if safe:
            outer += [f"CASE typeof({v}) WHEN 'text' THEN CAST({v} AS BLOB) WHEN 'blob' THEN 0 ELSE {v} END"
                      for v in (_ident("m_" + c.name) for c in stamps)]
            outer += [f"CASE typeof({v}) WHEN 'text' THEN CAST({v} AS BLOB) ELSE {v} END"
                      for v in (_ident("m_" + c.name) for c in numbers)]
        else:
            outer += [_ident("m_" + c.name) for c in (*stamps, *numbers)]
        params: list[object] = []
        where = self.where(flt, params, rowid_range)
        orphan_cols = self._orphan_inner_columns()
        sql = (
            f"SELECT {', '.join(outer)}\nFROM (\n  SELECT {', '.join(inner + orphan_cols)}\n"
            # SQLite flattens the subquery into the scan (a mapped value is computed at each reference, most are
            # a column read): 13% less CPU than keeping it apart with LIMIT -1 and copying every value out
            # (1M rows, side by side). The scan is in rowid order; the ORDER BY costs no sort.
            f"  FROM main.{_ident(self.table.source)} s\n{self.joins()}\n{where}\n)\nORDER BY _rowid"
        )
        return SourceQuery(sql, tuple(params), tuple(c.name for c in self.copy_columns), len(texts),
                           tuple((c.name, c.kind, c.source_tz == "UTC") for c in stamps),
                           (*(r.label for _, r in every), f"{INVALID_VALUE}:row"), safe)

    def _finite_condition(self) -> str | None:
        """True when the row's numeric values add up to a finite number: then none is an infinity (NULLs count
        as 0; SQLite stores no NaN). One sum per row instead of a look at every value; a row it flags (an
        infinity, or finite values whose sum overflows) has its values looked at by the producer. The sum times
        0 is 0 when it is finite; an infinite one gives NaN, which SQLite makes NULL (cheaper than abs())."""
        cols = [c for c in self.copy_columns if c.kind == "numeric"]
        if not cols:
            return None
        return "(" + " + ".join(f"ifnull({_ident('m_' + c.name)}, 0)" for c in cols) + ") * 0 = 0"

    def _implied_text_checks(self) -> frozenset[str]:
        """Text columns whose "not a blob" check another condition of the fast path already makes: a blob
        equals no literal of a vocabulary rule, and a blob ticker matches none of the target's tickers (text),
        so the orphan check fails it. The per-reason CASE still names the blob first."""
        out = {found[0] for r in self.rules if r.kind == "rule" and (found := vocabulary(r.rule.expr))}
        tcol = self.table.ticker_column
        if tcol and ORPHAN_NOT_LOADED.format(tcol) in {r.detail for r in self.rules if r.kind == "orphan"}:
            out.add(tcol)
        return frozenset(out)

    # The orphan conditions use join columns; they are carried out of the inner query by name.
    def _orphan_inner_columns(self) -> list[str]:
        out = []
        if self.table.ticker_column:
            out += ["t.ticker AS _t_ticker", "t.region AS _t_region", "s.region AS _s_region"
                    if self.table.region_rule in (RegionRule.COLUMN, RegionRule.COLUMN_OR_TICKER)
                    else "NULL AS _s_region", "t.known AS _t_known", "t.copy_text AS _t_text"]
        out += [f"k{i + 2}.ticker AS _k{i + 2}_ticker" for i in range(len(self.table.ticker_refs))]
        return out

    def _orphan_conditions(self) -> dict[str, str]:
        """The orphan rules' conditions by their detail (``registry.declared_rules``)."""
        out = {}
        tcol = self.table.ticker_column
        if tcol:
            out[ORPHAN_UNKNOWN.format(tcol)] = "_t_ticker IS NOT NULL"
            # _s_region is NULL where the source row has no region of its own
            out[ORPHAN_OTHER_REGION] = "(_s_region IS NULL OR _s_region = _t_region)"
            out[ORPHAN_NOT_LOADED.format(tcol)] = "_t_known IS 1"
        for i, ref in enumerate(self.table.ticker_refs):
            out[ORPHAN_NOT_LOADED.format(ref)] = f"_k{i + 2}_ticker IS NOT NULL"
        return out

    def _rename(self, expr: str) -> str:
        """A rule over target columns, rewritten over the inner query's m_ names."""

        names = set(self.table.column_names)
        return re.sub(r"\b([a-z_][a-z0-9_]*)\b",
                      lambda m: _ident("m_" + m.group(1)) if m.group(1) in names else m.group(1), expr)

    def day_column(self) -> int | None:
        """Which of the query's dates and timestamps gives a loaded row's checksum day (its first ten
        characters as rendered); None: the table has no time column, every row's day is ``NO_DAY``. The time
        column is required, so a loaded row has a day."""
        name = self.table.time_column
        if not name:
            return None
        if not self.table.column(name).required or self.table.column(name).kind not in CALENDAR_KINDS:
            raise ValueError(f"{self.table.name}.{name}: a time column must be a required date or timestamp")
        return [c.name for c in self.copy_columns if c.kind in CALENDAR_KINDS].index(name)

    # --- key collisions after mapping ------------------------------------------------------------
    def derived_key_columns(self) -> list[str]:
        """Key columns whose target value is mapped (so two source rows may meet on one key)."""
        out = []
        for name in self.table.key:
            col = self.table.column(name)
            if col.value_map or (name == "region" and self.table.region_rule is RegionRule.COLUMN_OR_TICKER):
                out.append(name)
        return out

    def collision_sql(self, flt: SliceFilter, *, whole_key: bool = False) -> tuple[str, tuple[object, ...]] | None:
        """Rowids (with the rowid kept) of rows that map onto a key another row already has.

        Where the source keeps its unmapped key unique, only rows that share the unmapped part of the key
        with an irregular row (NULL region, another timeframe spelling) can collide, so only those are
        ranked: no sort of the whole table. The row kept is the regular one, else the first written (lowest
        rowid). ``whole_key``: the source has no such constraint, so every row is ranked by its whole key.
        """
        derived = self.derived_key_columns()
        if not derived and not whole_key:
            return None
        key_exprs = [self.raw_expr(self.table.column(c)) for c in self.table.key]
        params: list[object] = []
        where = self.where(flt, params)
        irregular = []
        for name in derived:
            col = self.table.column(name)
            if name == "region":
                irregular.append("s.region IS NULL")
            if col.value_map:
                src = f"s.{_ident(col.source_column or name)}"
                irregular.append(f"{src} IN ({', '.join(_lit(a) for a, _ in col.value_map)})")
        irr = " OR ".join(irregular) or "0"
        if not whole_key:
            anchors = [c for c in self.table.key if c not in derived]
            anchor_src = [f"s.{_ident(self.table.column(a).source_column or a)}" for a in anchors]
            cand = (f"({', '.join(anchor_src)}) IN (SELECT {', '.join(anchor_src)} FROM main."
                    f"{_ident(self.table.source)} s WHERE {irr})")
            where = f"{where} AND {cand}" if where else f"WHERE {cand}"
        sql = (
            "SELECT rid, kept FROM (\n"
            f"  SELECT s.rowid AS rid, first_value(s.rowid) OVER w AS kept, row_number() OVER w AS rn\n"
            f"  FROM main.{_ident(self.table.source)} s\n"
            + f"  {self.source_ticker_join()}\n"
            + f"  {where}\n"
            f"  WINDOW w AS (PARTITION BY {', '.join(key_exprs)} ORDER BY ({irr}), s.rowid)\n"
            ") WHERE rn > 1"
        )
        return sql, tuple(params)


def slice_regions(table: Table, flt: SliceFilter) -> list[str]:
    """The region slices a load of ``table`` replaces (target side)."""
    if not table.has_region:
        return [ALL_REGIONS]
    return list(flt.regions) if flt.regions is not None else list(REGIONS)

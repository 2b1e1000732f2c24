"""Each check's SQL file filled in for one table: identifiers and the registry's rules, never values.

Every file under ``include/sql/quality/find_*.sql`` is a ``psycopg.sql`` template. ``{table}`` and the other
identifiers come from the table registry, the rules from ``quality.rules`` (registry text), and values are
bound as ``%(name)s`` parameters (``QualityRequest.sql_params``). Every query covers all requested regions at
once and returns, per result region, up to ``sample_limit`` sample rows, each carrying ``result_region``,
``violation_count`` (the region's total) and, where a check counts by rule or column, ``breakdown``.
"""

from __future__ import annotations

from psycopg import sql

from quantdbops import REGIONS
from quantdbops.quality.checks import QualityCheck
from quantdbops.quality.params import QualityRequest
from quantdbops.quality.rules import columns_read, declared_row_rules, required_rules
from quantdbops.registry import TICKERS, Table, ticker_references
from quantdbops.sqlfiles import read_sql

ALL_REGIONS = "ALL"  # the result region of market-wide tables


def _ident(*names: str) -> sql.Identifier:
    return sql.Identifier(*names)


def _list(names: tuple[str, ...] | list[str], alias: str | None = None) -> sql.Composable:
    return sql.SQL(", ").join(_ident(alias, n) if alias else _ident(n) for n in names)


def table_ident(t: Table) -> sql.Identifier:
    return _ident("public", t.name)


def scope(t: Table, request: QualityRequest) -> sql.Composable:
    """The rows a run checks: the requested regions (no predicate when all are: then a row whose region is
    outside the vocabulary is checked too, under its own region) and the window, as sargable predicates on
    bare columns (each template uses it where the table is the only one in its FROM)."""
    parts: list[sql.Composable] = []
    if t.has_region and set(request.regions) != set(REGIONS):
        parts.append(sql.SQL("region = ANY(%(regions)s)"))
    if t.time_column:
        column = _ident(t.time_column)
        if request.windowed:
            parts.append(sql.SQL("{} >= %(window_start)s").format(column))
        parts.append(sql.SQL("{} < %(window_stop)s").format(column))
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")


def result_region(t: Table) -> sql.Composable:
    """The region a row's violations are counted under: its own, or ALL for market-wide tables."""
    return _ident("region") if t.has_region else sql.Literal(ALL_REGIONS)


# --- duplicates ------------------------------------------------------------------------------------------
def group_columns(t: Table) -> tuple[str, ...]:
    """The natural key, with the region where the key does not hold it (duplicates are counted per region)."""
    return (*t.key, "region") if t.has_region and "region" not in t.key else t.key


def _spellings(t: Table, name: str) -> tuple[tuple[str, str], ...]:
    return t.column(name).value_map


def _normalized(t: Table, name: str) -> sql.Composable:
    """A key column as compared for near-duplicates: vocabulary spellings mapped, text trimmed, upper-cased."""
    ident = _ident(name)
    if t.column(name).kind != "text":
        return ident
    upper = sql.SQL("upper(btrim({}))").format(ident)
    spellings = _spellings(t, name)
    if not spellings:
        return upper
    whens = sql.SQL(" ").join(sql.SQL("WHEN {} THEN {}").format(sql.Literal(a), sql.Literal(b)) for a, b in spellings)
    return sql.SQL("CASE btrim({}) {} ELSE {} END").format(ident, whens, upper)


def _odd(t: Table, name: str) -> sql.Composable | None:
    """True at least for every value of a key column that is not spelled canonically (more is harmless: such a
    row is only grouped by its normalised key, exactly). A closed vocabulary (the mapped spellings' targets, the
    regions) is cheaper to test than the normalisation. Elsewhere the regex is implied by the comparison (a
    character upper() changes, or a space, is not A-Z or 0-9): it is there for the planner, which estimates a
    regex from the column's statistics but a comparison with an expression as true for nearly every row, and
    plans the scan in parallel only when it expects few rows out of it."""
    if t.column(name).kind != "text":
        return None
    canonical = sorted({b for _, b in _spellings(t, name)}) or (list(REGIONS) if name == "region" else [])
    ident = _ident(name)
    if canonical:
        return sql.SQL("{} NOT IN ({})").format(ident, sql.SQL(", ").join(sql.Literal(v) for v in canonical))
    return sql.SQL("({} ~ '[^A-Z0-9]' AND {} <> upper(btrim({})))").format(ident, ident, ident)


def _duplicates(template: sql.SQL, t: Table, request: QualityRequest) -> sql.Composed:
    group = group_columns(t)
    odd = [o for o in (_odd(t, c) for c in group) if o is not None]
    text_key = [c for c in t.key if t.column(c).kind == "text"] or list(t.key)
    return template.format(
        relation=sql.Literal(f"public.{t.name}"),
        key_names=sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(c) for c in t.key)),
        table=table_ident(t), scope=scope(t, request), result_region=result_region(t),
        normalized_key=sql.SQL(", ").join(sql.SQL("{} AS {}").format(_normalized(t, c), _ident(c)) for c in group),
        odd_spelling=sql.SQL(" OR ").join(odd) if odd else sql.SQL("FALSE"),
        spelling=sql.SQL("jsonb_build_object({})").format(
            sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(c), _ident(c)) for c in text_key)),
        twin_match=sql.SQL(" AND ").join(sql.SQL("{} = {}").format(_ident(c), _ident("o", c)) for c in group),
        group_key=_list(group))


# --- row rules -------------------------------------------------------------------------------------------
def sample_columns(t: Table, read: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A row rule's sample: the key, the region, and the columns its rules read."""
    first = (*t.key, *(("region",) if t.has_region and "region" not in t.key else ()))
    return (*first, *(c for c in read if c not in first))


def _row_check(template: sql.SQL, t: Table, request: QualityRequest, nulls: bool) -> sql.Composed:
    """null_required (the required columns' rules; the sample lists its NULL columns) or the declared rules (the
    sample lists the rules broken, in words, beside the columns they read)."""
    rules = required_rules(t) if nulls else declared_row_rules(t)
    columns = sample_columns(t) if nulls else sample_columns(t, columns_read(t))

    def listed(value: str) -> sql.Composable:
        return sql.SQL("array_remove(ARRAY[{}]::text[], NULL)").format(sql.SQL(", ").join(
            sql.SQL("CASE WHEN {} THEN {} END").format(r.broken, sql.Literal(getattr(r, value))) for r in rules))

    return template.format(
        table=table_ident(t), scope=scope(t, request), result_region=result_region(t),
        sample_columns=_list(columns), ranked_sample_columns=_list(columns, "ranked"), sample_order=_list(t.key),
        any_broken=sql.SQL(" OR ").join(r.broken for r in rules), broken_rules=listed("text"),
        broken_names=listed("name"), broken_column=_ident("null_columns" if nulls else "broken_rules"))


# --- referential -----------------------------------------------------------------------------------------
def _references(t: Table) -> sql.Composable:
    rows = [sql.SQL("({}, {}, {}, {})").format(
        sql.Literal(r.ticker_column), _ident("x", r.ticker_column),
        _ident("x", r.region_column) if r.region_column else sql.SQL("NULL::text"),
        sql.Literal(r.region_column is not None))
        for r in ticker_references() if r.table == t.name]
    if not rows:
        raise ValueError(f"{t.name} names no ticker: it has no place in the referential check")
    return sql.SQL(", ").join(rows)


def compose(qc: QualityCheck, t: Table, request: QualityRequest) -> sql.Composed:
    """The check's SQL file for one table and the request's regions and window."""
    template = sql.SQL(read_sql(f"quality/{qc.sql_file}"))
    if qc.name == "duplicates":
        return _duplicates(template, t, request)
    if qc.name == "null_required":
        return _row_check(template, t, request, nulls=True)
    if qc.name in ("ohlcv_rules", "row_rules"):
        return _row_check(template, t, request, nulls=False)
    if qc.name == "referential":
        return template.format(table=table_ident(t), scope=scope(t, request), result_region=result_region(t),
                               tickers=table_ident(TICKERS), references=_references(t))
    if qc.name == "freshness":
        return template.format(table=table_ident(t), time_column=_ident(t.time_column or "date"))
    return template.format(table=table_ident(t), scope=scope(t, request), result_region=result_region(t))

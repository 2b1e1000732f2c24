"""The row checks (null_required, ohlcv_rules, row_rules) on real PostgreSQL (both modes): every rule of the
registry's declaration found by its check, counted per rule, and read only where PostgreSQL does not already
enforce it.

Rows breaking a rule are planted with SQL in a transaction rolled back after the test: the loader quarantines
them and the schema's constraints refuse them, so a test first drops (or re-adds NOT VALID) the constraint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from quantdbops import REGIONS
from quantdbops.io.pg import connect
from quantdbops.quality.checks import check
from quantdbops.quality.compose import compose
from quantdbops.quality.report import load_results, record
from quantdbops.quality.rules import rule_check_name
from quantdbops.quality.runner import prepare_session, run_check
from quantdbops.registry import OHLCV_DATA, TABLES, Table
from support.harness import MODES
from support.quality import DEFECTS, Loaded, fill_if_empty, loaded_database, request, rolled_back


@pytest.fixture(scope="module", params=MODES)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    yield from loaded_database(request, tmp_path_factory.mktemp("qrules"), DEFECTS)


@pytest.fixture
def tx(db: Loaded) -> Iterator[psycopg.Connection]:
    yield from rolled_back(db.dsn)


def _drop_rules(conn: psycopg.Connection, t: Table) -> None:
    """Drop the table's CHECK constraints, and the foreign keys to and from it (they would refuse a changed key)."""
    for name, _ in t.checks:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.Identifier("public", t.name), sql.Identifier(name)))
    for table, name in conn.execute("SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' "
                                    "AND %s::regclass IN (confrelid, conrelid) AND conparentid = 0 ORDER BY conrelid",
                                    (f"public.{t.name}",)).fetchall():
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(sql.SQL(table),
                                                                                   sql.Identifier(name)))


# Values tried, column by column, to break one rule of a row (the first that makes its expression false).
_TRIALS = {"text": ["XX"], "numeric": [0, -1, 10**9], "int": [0, -1], "bigint": [0, -1], "date": []}


def _where(key: dict[str, object]) -> sql.Composable:
    return sql.SQL(" AND ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Literal(v)) for c, v in key.items())


def _break(conn: psycopg.Connection, t: Table, key: dict[str, object], rule_expr: str) -> bool:
    """Change one column of the row with ``key`` so that ``rule_expr`` is false (and say whether it worked)."""
    table = sql.Identifier("public", t.name)
    for column in re.findall(r"\b([a-z_][a-z0-9_]*)\b", rule_expr):
        if column not in t.column_names:
            continue
        for value in _TRIALS.get(t.column(column).kind, []):
            conn.execute("SAVEPOINT trial")
            conn.execute(sql.SQL("UPDATE {} SET {} = %s WHERE {}").format(table, sql.Identifier(column), _where(key)),
                         (value,))
            changed = {**key, column: value} if column in key else key
            broken = conn.execute(sql.SQL("SELECT NOT ({}) FROM {} WHERE {}").format(
                sql.SQL(rule_expr), table, _where(changed))).fetchone()
            if broken and broken[0]:
                conn.execute("RELEASE SAVEPOINT trial")
                return True
            conn.execute("ROLLBACK TO SAVEPOINT trial")
    return False


def _plant_every_rule(conn: psycopg.Connection, t: Table) -> dict[str, int]:
    """One row per rule of ``t`` changed to break it (rows taken in turn); {rule name: rows planted}."""
    _drop_rules(conn, t)
    with conn.cursor(row_factory=dict_row) as cur:
        keys = cur.execute(sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT %s").format(
            sql.SQL(", ").join(map(sql.Identifier, t.key)), sql.Identifier("public", t.name),
            sql.SQL(", ").join(map(sql.Identifier, t.key))), (len(t.rules) * 3,)).fetchall()
    planted: dict[str, int] = {}
    for rule in t.rules:
        while keys and rule.name not in planted:
            if _break(conn, t, keys.pop(0), rule.expr):
                planted[rule.name] = 1
    return planted


def test_every_rule_of_ohlcv_datas_declaration_is_found_by_name(tx: psycopg.Connection, db: Loaded) -> None:
    planted = _plant_every_rule(tx, OHLCV_DATA)
    assert set(planted) == {r.name for r in OHLCV_DATA.rules}
    results = run_check(tx, "ohlcv_rules", request(db.last_date))
    found: dict[str, int] = {}
    for r in results:
        for name, n in r.breakdown.items():
            found[name] = found.get(name, 0) + n
    assert set(found) >= set(planted)  # a change can break more than its rule (high = 0 breaks high >= low)
    assert sum(r.violation_count for r in results) == len(planted)
    # the row whose region left the vocabulary is counted under its own region, not lost between regions
    assert any(r.region not in REGIONS and r.breakdown.get("chk_ohlcv_region") for r in results)


@pytest.mark.parametrize("table", [pytest.param(t, id=t.name) for t in TABLES
                                   if t.rules and rule_check_name(t) == "row_rules"])
def test_every_rule_of_the_other_tables_is_found_by_row_rules(tx: psycopg.Connection, db: Loaded,
                                                              table: Table) -> None:
    fill_if_empty(tx, table, db.last_date, rows=len(table.rules))  # a table the sample has no source for
    planted = _plant_every_rule(tx, table)
    results = [r for r in run_check(tx, "row_rules", request(db.last_date)) if r.table_name == table.name]
    found = {name for r in results for name in r.breakdown}
    assert planted and found >= set(planted), (planted, found)
    assert sum(r.violation_count for r in results) == len(planted)


def test_each_broken_rule_is_named_and_its_rows_sampled(db: Loaded, tx: psycopg.Connection) -> None:
    _drop_rules(tx, OHLCV_DATA)
    tx.execute("ALTER TABLE public.ohlcv_data ALTER COLUMN volume DROP NOT NULL")
    (t1, _, d1), (t2, _, d2), (t3, _, d3) = tx.execute(
        "SELECT ticker, region, date FROM public.ohlcv_data WHERE region = 'JP' AND timeframe = 'D' "
        "ORDER BY ticker, date OFFSET 5 LIMIT 3").fetchall()
    tx.execute("UPDATE public.ohlcv_data SET low = 0 WHERE ticker = %s AND region = 'JP' AND date = %s", (t1, d1))
    tx.execute("UPDATE public.ohlcv_data SET volume = -7 WHERE ticker = %s AND region = 'JP' AND date = %s", (t2, d2))
    tx.execute("UPDATE public.ohlcv_data SET volume = NULL WHERE ticker = %s AND region = 'JP' AND date = %s",
               (t3, d3))
    req = request(db.last_date)
    rules = {r.region: r for r in run_check(tx, "ohlcv_rules", req)}
    jp = rules.pop("JP")
    assert jp.breakdown == {"chk_ohlcv_prices": 1, "chk_ohlcv_volume": 1}
    assert jp.violation_count == 2  # the NULL volume is null_required's, not a broken rule
    assert {(s["ticker"], s["date"], tuple(s["broken_rules"])) for s in jp.sample_rows} == {
        (t1, d1.isoformat(), ("price <= 0",)), (t2, d2.isoformat(), ("volume < 0",))}
    assert all(r.passed and not r.breakdown for r in rules.values())
    nulls = {r.region: r for r in run_check(tx, "null_required", req) if r.table_name == "ohlcv_data"}
    assert nulls["JP"].breakdown == {"volume": 1} and nulls["JP"].violation_count == 1
    assert [s["ticker"] for s in nulls["JP"].sample_rows] == [t3]
    assert json.dumps([r.as_dict() for r in nulls.values()])  # XCom: metadata, JSON-serialisable


def _scans(conn: psycopg.Connection, name: str, req: object) -> list[str]:
    prepare_session(conn)
    plan = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + compose(check(name), OHLCV_DATA, req),
                        req.sql_params()).fetchone()[0][0]["Plan"]

    def nodes(p: dict) -> Iterator[dict]:
        yield p
        for child in p.get("Plans", []):
            yield from nodes(child)

    return [n["Relation Name"] for n in nodes(plan) if "Relation Name" in n and n["Node Type"] != "Custom Scan"]


def test_a_rule_postgresql_enforces_is_not_read_and_one_added_not_valid_is(db: Loaded, tx: psycopg.Connection) -> None:
    req = request(db.last_date)
    assert _scans(tx, "ohlcv_rules", req) == [] and _scans(tx, "null_required", req) == []
    ticker, day = tx.execute("SELECT ticker, date FROM public.ohlcv_data WHERE region = 'CN' AND timeframe = 'D' "
                             "ORDER BY ticker, date LIMIT 1").fetchone()
    # a table of an earlier schema: the rule was added NOT VALID over a row that breaks it
    tx.execute("ALTER TABLE public.ohlcv_data DROP CONSTRAINT chk_ohlcv_volume")
    tx.execute("UPDATE public.ohlcv_data SET volume = -1 WHERE ticker = %s AND region = 'CN' AND date = %s",
               (ticker, day))
    tx.execute("ALTER TABLE public.ohlcv_data ADD CONSTRAINT chk_ohlcv_volume CHECK (volume >= 0) NOT VALID")
    assert _scans(tx, "ohlcv_rules", req)
    results = run_check(tx, "ohlcv_rules", req)
    assert {(r.region, r.violation_count) for r in results if not r.passed} == {("CN", 1)}
    assert [s["ticker"] for r in results for s in r.sample_rows] == [ticker]


def test_an_empty_scope_passes_the_rules_but_is_stale(db: Loaded) -> None:
    before = db.last_date - timedelta(days=db.manifest["days"] * 2)  # before the sample's first bar
    req = request(before, lookback_days=30)
    with connect(db.dsn, autocommit=True) as conn:
        for name in ("null_required", "ohlcv_rules", "row_rules"):
            results = run_check(conn, name, req)
            assert results and all(r.passed for r in results), name
        stale = run_check(conn, "freshness", req)
    assert {r.region for r in stale if not r.passed} == set(REGIONS)
    assert all(r.sample_rows[0]["newest_date"] is None for r in stale)


def test_the_breakdown_and_seconds_are_kept_in_the_record(db: Loaded, tx: psycopg.Connection) -> None:
    _drop_rules(tx, OHLCV_DATA)
    ticker, day = tx.execute("SELECT ticker, date FROM public.ohlcv_data WHERE region = 'KR' AND timeframe = 'D' "
                             "ORDER BY ticker, date LIMIT 1").fetchone()
    tx.execute("UPDATE public.ohlcv_data SET volume = -1 WHERE ticker = %s AND region = 'KR' AND date = %s",
               (ticker, day))
    results = run_check(tx, "ohlcv_rules", request(db.last_date))
    record(tx, "details-run", "ohlcv_rules", results)
    stored = dict(tx.execute("SELECT region, details FROM ops.quality_results WHERE run_id = 'details-run'").fetchall())
    assert set(stored) == set(REGIONS)
    assert stored["KR"]["breakdown"] == {"chk_ohlcv_volume": 1} and stored["KR"]["seconds"] >= 0
    assert all(stored[r]["breakdown"] == {} for r in REGIONS if r != "KR")
    back = {r.region: r for r in load_results(tx, "details-run")}
    assert back["KR"].breakdown == {"chk_ohlcv_volume": 1} and back["KR"].violation_count == 1

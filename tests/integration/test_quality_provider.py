"""The checks the common-sql provider's operators decide (null_required, ohlcv_rules, freshness), on real PostgreSQL.

What the provider found per check (``column_mapping[...]["result"/"success"]``, ``checks[...]``) is carried on
each result; an empty scope passes the column/table checks but is stale for freshness; run standalone, the
subclasses query through the provider's own hook of the ``quant_postgres`` connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from airflow.providers.common.sql.operators.sql import SQLColumnCheckOperator, SQLTableCheckOperator
from test_quality_support import DEFECTS, Loaded, loaded_database, request

from conftest import MODES
from quantdbops import CONN_POSTGRES, REGIONS
from quantdbops.io.pg import connect
from quantdbops.operators.quality import QualityColumnCheckOperator, QualityTableCheckOperator
from quantdbops.quality.checks import check
from quantdbops.quality.runner import PROVIDER_CHECKS, provider_operators, run_check
from quantdbops.registry import OHLCV_DATA


@pytest.fixture(scope="module", params=MODES)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    yield from loaded_database(request, tmp_path_factory.mktemp("qprovider"), DEFECTS)


@pytest.fixture
def tx(db: Loaded) -> Iterator[psycopg.Connection]:
    conn = connect(db.dsn)
    yield conn
    conn.rollback()
    conn.close()


def test_the_provider_decides_and_every_check_of_it_is_recorded(db: Loaded) -> None:
    req = request(db.last_date)
    with connect(db.dsn, autocommit=True) as conn:
        ops = provider_operators(check("ohlcv_rules"), OHLCV_DATA, req, "KR", conn)
        assert {type(op).__mro__[2] for op in ops} == {SQLColumnCheckOperator, SQLTableCheckOperator}
        expected = {"null_required": {f"{c}.null_check" for c in OHLCV_DATA.required_columns},
                    "ohlcv_rules": {"open.min", "high.min", "low.min", "close.min", "volume.min",
                                    "high_ge_open_close", "low_le_open_close", "high_ge_low"},
                    "freshness": {f"{OHLCV_DATA.time_column}.max"}}
        for name in PROVIDER_CHECKS:
            results = run_check(conn, name, req)
            assert results and all(r.passed and r.provider_checks for r in results), name
            ohlcv = [r for r in results if r.table_name == "ohlcv_data"]
            assert {r.region for r in ohlcv} == set(REGIONS)
            for r in ohlcv:
                assert set(r.provider_checks) == expected[name], name
                assert all(v["success"] for v in r.provider_checks.values())
        # the provider's min over the clean sample is the table's own minimum
        low = conn.execute("SELECT min(low) FROM public.ohlcv_data WHERE region = 'KR'").fetchone()[0]
        kr = next(r for r in run_check(conn, "ohlcv_rules", req) if r.region == "KR")
        assert kr.provider_checks["low.min"]["result"] == pytest.approx(float(low))


def test_failing_provider_checks_name_the_rule_and_the_sample_rows_follow(db: Loaded, tx: psycopg.Connection) -> None:
    for name, _ in OHLCV_DATA.checks:  # rows the schema refuses, as a database without the rules holds them
        tx.execute(f"ALTER TABLE public.ohlcv_data DROP CONSTRAINT {name}")
    tx.execute("ALTER TABLE public.ohlcv_data ALTER COLUMN volume DROP NOT NULL")
    (t1, _, d1), (t2, _, d2), (t3, _, d3) = tx.execute(
        "SELECT ticker, region, date FROM public.ohlcv_data WHERE region = 'JP' AND timeframe = 'D' "
        "ORDER BY ticker, date OFFSET 5 LIMIT 3").fetchall()
    tx.execute("UPDATE public.ohlcv_data SET low = 0 WHERE ticker = %s AND region = 'JP' AND date = %s", (t1, d1))
    tx.execute("UPDATE public.ohlcv_data SET volume = -7 WHERE ticker = %s AND region = 'JP' AND date = %s", (t2, d2))
    tx.execute("UPDATE public.ohlcv_data SET volume = NULL WHERE ticker = %s AND region = 'JP' AND date = %s",
               (t3, d3))
    req = request(db.last_date)
    rules = {r.region: r for r in run_check(tx, "ohlcv_rules", req) if r.table_name == "ohlcv_data"}
    jp = rules.pop("JP")
    assert sorted(jp.provider_failures) == ["low.min=0", "volume.min=-7"]
    assert jp.violation_count == 2  # the NULL volume is null_required's, not a broken rule
    assert {(s["ticker"], s["date"]) for s in jp.sample_rows} == {(t1, d1.isoformat()), (t2, d2.isoformat())}
    assert all(r.passed and not r.provider_failures for r in rules.values())
    nulls = {r.region: r for r in run_check(tx, "null_required", req) if r.table_name == "ohlcv_data"}
    assert nulls["JP"].provider_failures == ["volume.null_check=1"] and nulls["JP"].violation_count == 1
    assert [s["ticker"] for s in nulls["JP"].sample_rows] == [t3]
    assert json.dumps([r.as_dict() for r in nulls.values()])  # XCom: metadata, JSON-serialisable


def test_an_empty_scope_passes_the_rules_but_is_stale(db: Loaded) -> None:
    before = db.last_date - timedelta(days=db.manifest["days"] * 2)  # before the sample's first bar
    req = request(before, lookback_days=30)
    with connect(db.dsn, autocommit=True) as conn:
        for name in ("null_required", "ohlcv_rules"):
            results = [r for r in run_check(conn, name, req) if r.table_name == "ohlcv_data"]
            assert results and all(r.passed for r in results), name
        stale = run_check(conn, "freshness", req)
    assert {r.region for r in stale if not r.passed} == set(REGIONS)
    assert all(r.provider_checks["date.max"]["result"] is None and r.sample_rows[0]["newest_date"] is None
               for r in stale)


def test_standalone_the_operators_use_the_quant_postgres_connection(
    db: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = dict(p.split("=", 1) for p in db.dsn.split())
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_POSTGRES.upper()}", json.dumps({
        "conn_type": "postgres", "host": parts["host"], "port": int(parts["port"]), "login": parts["user"],
        "schema": parts["dbname"]}))
    columns = QualityColumnCheckOperator(task_id="columns", conn_id=CONN_POSTGRES, table="public.ohlcv_data",
                                         partition_clause="region = 'KR'",
                                         column_mapping={"volume": {"min": {"geq_to": 0}},
                                                         "close": {"max": {"less_than": 0}}})
    outcomes = columns.evaluate()
    assert outcomes["volume.min"]["success"] and not outcomes["close.max"]["success"]
    rows = QualityTableCheckOperator(task_id="rows", conn_id=CONN_POSTGRES, table="public.ohlcv_data",
                                     checks={"positive": {"check_statement": "close > 0"}}).evaluate()
    assert rows == {"positive": {"result": "1", "success": True}}
    with pytest.raises(psycopg.Error):  # a broken query is not a failed check: it propagates
        QualityTableCheckOperator(task_id="bad", conn_id=CONN_POSTGRES, table="public.no_such_table",
                                  checks={"x": {"check_statement": "TRUE"}}).evaluate()


def test_what_the_provider_measured_is_kept_in_the_record(db: Loaded, tx: psycopg.Connection) -> None:
    """ops.quality_results.details keeps each rule's measured value, and the report reads it back."""
    from quantdbops.quality.runner import load_results, record

    results = run_check(tx, "ohlcv_rules", request(db.last_date))
    record(tx, "details-run", "ohlcv_rules", results)
    stored = {(r["table_name"], r["region"]): r["details"] for r in tx.execute(
        "SELECT table_name, region, details FROM ops.quality_results WHERE run_id = 'details-run'").fetchall()
        for r in [dict(zip(("table_name", "region", "details"), r, strict=True))]}
    assert len(stored) == len(results)
    for r in results:
        details = stored[(r.table_name, r.region)]
        assert set(details["provider_checks"]) == set(r.provider_checks)
        for name, outcome in r.provider_checks.items():
            assert details["provider_checks"][name]["success"] == outcome["success"]
            got, want = details["provider_checks"][name]["result"], outcome["result"]
            # JSON keeps dates as ISO text and numerics as numbers; anything else as the provider gave it
            expected = want.isoformat() if hasattr(want, "isoformat") else \
                float(want) if isinstance(want, Decimal) else want
            assert got == (pytest.approx(expected) if isinstance(expected, float) else expected), name
        assert details["seconds"] >= 0
    back = {(r.table_name, r.region): r for r in load_results(tx, "details-run")}
    kr = next(r for r in results if r.table_name == "ohlcv_data" and r.region == "KR")
    assert set(back[("ohlcv_data", "KR")].provider_checks) == set(kr.provider_checks)
    assert back[("ohlcv_data", "KR")].provider_checks["low.min"]["result"] == pytest.approx(
        float(kr.provider_checks["low.min"]["result"]))

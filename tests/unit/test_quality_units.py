"""The quality checks' rules and definitions, without a database: taken from the registry's declaration, each
written down once, and the quality package standing on its own."""

from __future__ import annotations

import ast
from datetime import date

import pytest

from quantdbops.quality.checks import CHECKS, check
from quantdbops.quality.params import QualityRequest
from quantdbops.quality.rules import (
    check_of,
    declared_row_rules,
    natural_key_tables,
    required_rules,
    rule_check_name,
)
from quantdbops.registry import OHLCV_DATA, TABLES, Rule, declared_rules
from support import REPO
from support.dags import load_dag


@pytest.mark.parametrize("table", [pytest.param(t, id=t.name) for t in TABLES])
def test_every_rule_the_loader_checks_is_counted_by_a_check_of_that_table(table) -> None:
    for rule in declared_rules(table):
        name = check_of(rule, table)
        if name is None:  # a value of another type cannot be stored; an identity key cannot repeat
            assert rule.kind == "type" or (rule.kind == "key" and table not in natural_key_tables()), rule.label
            continue
        assert table in check(name).tables, (rule.label, name)


@pytest.mark.parametrize("table", [pytest.param(t, id=t.name) for t in TABLES if t.rules])
def test_the_row_rules_are_the_tables_declaration(table) -> None:
    assert [r.name for r in declared_row_rules(table)] == [r.name for r in table.rules]
    assert table in check(rule_check_name(table)).tables
    assert [r.name for r in required_rules(table)] == list(table.required_columns)


def test_ohlcv_rules_is_the_whole_ohlcv_declaration_in_words() -> None:
    texts = {r.name: r.text for r in declared_row_rules(OHLCV_DATA)}
    assert check("ohlcv_rules").tables == (OHLCV_DATA,)
    assert OHLCV_DATA not in check("row_rules").tables
    assert texts["chk_ohlcv_volume"] == "volume < 0"
    assert texts["chk_ohlcv_prices"] == "price <= 0"
    assert texts["chk_ohlcv_high_low"] == "high < low"
    assert texts["chk_ohlcv_timeframe"] == "timeframe not in D/W/M"


@pytest.mark.parametrize(("expr", "broken"), [
    pytest.param("volume >= 0", "volume < 0", id="ge"),
    pytest.param("high >= low", "high < low", id="ge-columns"),
    pytest.param("low <= close", "low > close", id="le"),
    pytest.param("weight > 0", "weight <= 0", id="gt"),
    pytest.param("a > 0 AND b > 0", "not (a > 0 AND b > 0)", id="anything-else"),
])
def test_a_rule_broken_in_words(expr: str, broken: str) -> None:
    assert Rule("chk", expr).broken_text == broken


@pytest.fixture(scope="module")
def doc_md() -> str:
    return " ".join(load_dag("data_quality_daily").doc_md.split())


@pytest.mark.parametrize("qc", [pytest.param(c, id=c.name) for c in CHECKS])
def test_each_definition_is_one_sentence_and_the_runbook_states_it(qc, doc_md: str) -> None:
    text = qc.define()
    assert text.endswith(".") and text.count(". ") == 0 and text[0].isupper(), text
    assert f"`{qc.name}` ({qc.severity.value}): {text}" in doc_md
    assert "seeds" not in doc_md


def test_a_definition_in_the_log_carries_the_runs_values() -> None:
    req = QualityRequest.from_params({"gap_threshold_days": 5, "z_threshold": 2.5, "max_age_days": 9},
                                     default_as_of=date(2025, 10, 17))
    assert "more than 5 calendar days apart" in check("missing_dates").define(req)
    assert "exceeds 2.5," in check("price_anomalies").define(req)
    assert "more than 9 days old" in check("freshness").define(req)


def test_the_quality_package_does_not_import_the_operators() -> None:
    for path in (REPO / "plugins" / "quantdbops" / "quality").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.startswith("quantdbops.operators")], path.name

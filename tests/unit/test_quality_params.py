"""The quality DAG's params and check registry, without a database."""

from __future__ import annotations

from datetime import date

import pytest

from quantdbops.quality.checks import CHECK_NAMES, CHECKS, Severity
from quantdbops.quality.params import ParamError, QualityRequest
from quantdbops.sqlfiles import SQL_ROOT
from support.dags import load_dag


@pytest.fixture(scope="module")
def dag():
    return load_dag("data_quality_daily")


@pytest.mark.parametrize(("name", "value"), [
    pytest.param("checks", ["duplicates", "no_such_check"], id="unknown-check"),
    pytest.param("regions", ["KR", "XX"], id="unknown-region"),
    pytest.param("lookback_days", -1, id="negative-lookback"),
    pytest.param("z_threshold", 0, id="zero-z"),
])
def test_params_reject_bad_values(dag, name: str, value: object) -> None:
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(dict(dag.params.items()))
    params.validate()  # the defaults are valid
    with pytest.raises(Exception, match=r"valid|is not|less than|minimum"):
        params[name] = value
        params.validate()


def test_defaults_are_the_seeds(dag) -> None:
    defaults = {k: dag.params[k] for k in ("z_threshold", "gap_threshold_days", "lookback_days", "max_age_days")}
    assert defaults == {"z_threshold": 3.0, "gap_threshold_days": 3, "lookback_days": 30, "max_age_days": 7}
    assert dag.params.get_param("checks").schema["items"]["enum"] == list(CHECK_NAMES)


def test_one_task_per_check_then_the_report(dag) -> None:
    assert set(dag.task_ids) == {f"check_{n}" for n in CHECK_NAMES} | {"report"}
    report = dag.get_task("report")
    assert report.upstream_task_ids == {f"check_{n}" for n in CHECK_NAMES}
    assert report.retries == 0 and report.trigger_rule == "all_done"
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"


def test_request_window() -> None:
    req = QualityRequest.from_params({"lookback_days": 30}, default_as_of=date(2025, 10, 17))
    assert (req.window_start, req.window_stop) == (date(2025, 9, 17), date(2025, 10, 18))
    whole = QualityRequest.from_params({"lookback_days": 0, "as_of": "2025-10-01"}, default_as_of=date(2025, 10, 17))
    assert (whole.window_start, whole.window_stop) == (date.min, date(2025, 10, 2))


@pytest.mark.parametrize("params", [
    pytest.param({"checks": ["nope"]}, id="check"), pytest.param({"regions": ["EU"]}, id="region"),
    pytest.param({"as_of": "17/10/2025"}, id="as_of"), pytest.param({"gap_threshold_days": 0}, id="gap"),
])
def test_request_rejects_what_the_schema_would(params: dict) -> None:
    with pytest.raises(ParamError):
        QualityRequest.from_params(params, default_as_of=date(2025, 10, 17))


def test_every_check_has_its_sql_file_and_tables() -> None:
    for qc in CHECKS:
        assert (SQL_ROOT / "quality" / qc.sql_file).is_file(), qc.name
        assert qc.tables, qc.name
        assert qc.severity in (Severity.ERROR, Severity.WARNING)
    assert "tickers" not in {t for qc in CHECKS if qc.name == "referential" for t in qc.table_names}

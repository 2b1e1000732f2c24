"""Static checks of the monitoring files: exporter queries, Prometheus config and alert rules, Grafana
provisioning and dashboard, and how they refer to each other and to docker-compose.yaml.

Every PromQL expression is parsed (promql-parser) and may only name metrics that exist: the custom
queries' ``<namespace>_<column>``, the standard postgres_exporter metrics listed in
tests/support/monitoring.py, and Prometheus' own ``up``/``ALERTS``. That the SQL runs is checked against a
real database in tests/integration/test_monitoring_queries.py.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import promql_parser
import pytest
import yaml

from quantdbops.quality.checks import CHECK_NAMES
from quantdbops.quality.params import DEFAULTS as QUALITY_DEFAULTS
from quantdbops.registry import TABLES
from support import REPO
from support.compose import TARGET_DATABASE, environment, mounts
from support.monitoring import (
    DASHBOARD_DIR,
    DASHBOARD_PROVIDERS_FILE,
    STANDARD_METRICS,
    alert_rules,
    dashboard,
    data_panels,
    datasources,
    declared_columns,
    exported_metrics,
    exporter_queries,
    known_metrics,
    panels,
    prometheus_config,
    promql_targets,
    selectors,
    sql_targets,
)

SEVERITIES = ("critical", "warning", "info")
# The seeds' alerts this stack must have, and the metric each must judge.
REQUIRED_ALERTS = {
    "database down": ("QuantDatabaseDown", "pg_up"),
    "duplicates": ("QuantDuplicateRecords", "quant_quality_violations"),
    "stale data": ("QuantDataStale", "quant_ohlcv_freshness_age_days"),
    "missing dates": ("QuantMissingDatesHigh", "quant_quality_violations"),
    "low index hit rate": ("QuantIndexHitRateLow", "quant_table_io_idx_blks_hit"),
    "backup missing": ("QuantBackupMissing", "quant_backup_last_success_age_seconds"),
    "compression not enabled": ("QuantCompressionNotEnabled", "quant_hypertable_compression_enabled"),
}
# The seeds' dashboard panels (and the brief's categories): what some panel must read for each.
DASHBOARD_COVERAGE = {
    "database size": "pg_database_size_bytes",
    "table sizes": "quant_table_size_bytes",
    "row counts by table": "quant_table_rows_estimate",
    "tickers by region": "quant_ohlcv_freshness_tickers",
    "slow queries (statements)": "pg_stat_statements",
    "slow query count": "quant_slow_statements_statements",
    "query error rate": "pg_stat_database_xact_rollback",
    "connections": "pg_stat_activity_count",
    "cache hit rate": "pg_stat_database_blks_hit",
    "index hit rate": "quant_table_io_idx_blks_hit",
    "index hit rate by table": "quant_table_io_idx_hit_ratio",
    "data age by region": "quant_ohlcv_freshness_age_days",
    "quality violations": "quant_quality_violations",
    "quality history": "ops.quality_results",
    "chunk counts": "quant_hypertable_chunks",
    "compression": "quant_hypertable_compressed_chunks",
    "backup age": "quant_backup_last_success_age_seconds",
    "backup runs": "ops.backups",
    "maintenance runs": "ops.maintenance_log",
    "migration runs": "ops.migration_runs",
}
COMPRESSED_TABLES = {t.name for t in TABLES if t.compression}


def _all_promql() -> list[Any]:
    exprs = [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]
    exprs += promql_targets(dashboard())
    return [pytest.param(expr, id=where) for where, expr in exprs]


def _rule(name: str) -> dict[str, Any]:
    (rule,) = [r for r in alert_rules() if r["alert"] == name]
    return rule


# --- exporter queries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", [pytest.param(n, id=n) for n in exporter_queries()])
def test_exporter_namespace_is_well_formed(namespace: str) -> None:
    spec = exporter_queries()[namespace]
    # quant_*: never shadows a built-in pg_* namespace of the exporter.
    assert re.fullmatch(r"quant_[a-z0-9_]+", namespace)
    assert spec["query"].strip()
    assert spec.get("master") is True, "master: run once, on the configured database only"
    columns = declared_columns(spec)
    assert set(columns.values()) <= {"LABEL", "GAUGE", "COUNTER"}
    assert any(usage != "LABEL" for usage in columns.values()), "a namespace without a metric exports nothing"
    for mapping in spec["metrics"]:
        ((_, options),) = mapping.items()
        assert options.get("description"), mapping


def test_exporter_metrics_do_not_collide_with_standard_ones() -> None:
    assert not set(exported_metrics()) & STANDARD_METRICS


# --- PromQL --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("expr", _all_promql())
def test_promql_uses_only_exported_metrics(expr: str) -> None:
    used = {s.metric for s in selectors(expr)}
    assert used, "an expression without any series"
    assert used <= known_metrics(), f"unknown metrics {sorted(used - known_metrics())}"


@pytest.mark.parametrize("expr", _all_promql())
def test_promql_label_values_exist(expr: str) -> None:
    exported = exported_metrics()
    for sel in selectors(expr):
        labels = {c for c, u in declared_columns(exporter_queries()[exported[sel.metric]]).items() if u == "LABEL"} \
            if sel.metric in exported else None
        for label, op, value in sel.matchers:
            if labels is not None and label not in ("instance", "job", "database", "server"):
                assert label in labels, f"{sel.metric} has no label {label!r}"
            if label == "check":
                assert op == "=" and value in CHECK_NAMES, f"unknown quality check {value!r}"
            if label == "datname":
                assert value == TARGET_DATABASE
            if label == "job":
                jobs = {job["job_name"] for job in prometheus_config()["scrape_configs"]}
                assert value in jobs, f"no scrape job {value!r}"


# --- alert rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("concept", "alert", "metric"),
                         [pytest.param(c, a, m, id=c) for c, (a, m) in REQUIRED_ALERTS.items()])
def test_required_alert_exists_and_judges_its_metric(concept: str, alert: str, metric: str) -> None:
    rule = _rule(alert)
    assert metric in {s.metric for s in selectors(rule["expr"])}, f"{alert} does not read {metric}"


def test_alert_names_are_unique() -> None:
    names = [r["alert"] for r in alert_rules()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule", [pytest.param(r, id=r["alert"]) for r in alert_rules()])
def test_alert_has_severity_summary_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    meaning, _, todo = annotations["description"].partition("What to do:")
    assert meaning.strip(), "the description first says what the alert means"
    assert len(todo.split()) >= 10, "the description ends with the first steps, after 'What to do:'"
    assert promql_parser.parse_duration(rule["for"]).total_seconds() > 0, "a `for` keeps one bad scrape quiet"


def test_compression_alert_covers_exactly_the_compressed_tables() -> None:
    regexes = {value for sel in selectors(_rule("QuantCompressionNotEnabled")["expr"])
               for label, op, value in sel.matchers if label == "table" and op == "=~"}
    assert regexes, "the alert must be limited to the tables the registry compresses"
    for regex in regexes:
        assert set(regex.split("|")) == COMPRESSED_TABLES


def test_stale_data_threshold_matches_the_quality_check() -> None:
    # Same limit as data_quality_daily's freshness check, so the alert and the check agree.
    expr = promql_parser.parse(_rule("QuantDataStale")["expr"])
    assert isinstance(expr, promql_parser.BinaryExpr) and isinstance(expr.rhs, promql_parser.NumberLiteral)
    assert expr.rhs.val == QUALITY_DEFAULTS["max_age_days"]


# --- Prometheus configuration ----------------------------------------------------------------------------


def test_prometheus_scrapes_the_exporter(services: dict[str, dict[str, Any]]) -> None:
    targets = [t for job in prometheus_config()["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]]
    assert "postgres-exporter:9187" in targets
    assert 9187 in {int(p) for p in services["postgres-exporter"]["expose"]}


def test_prometheus_loads_the_mounted_rules(services: dict[str, dict[str, Any]]) -> None:
    mounted = mounts(services["prometheus"])
    rule_targets = [t for t, s in mounted.items() if s.endswith("monitoring/prometheus/alerts.yml")]
    assert rule_targets
    for target in rule_targets:
        assert any(fnmatch.fnmatch(target, pattern) for pattern in prometheus_config()["rule_files"])
    config = [t for t, s in mounted.items() if s.endswith("monitoring/prometheus/prometheus.yml")]
    assert [f"--config.file={c}" for c in config] == [
        arg for arg in services["prometheus"]["command"] if arg.startswith("--config.file=")]


def test_scrape_fits_the_exporter_timeout(services: dict[str, dict[str, Any]]) -> None:
    glob = prometheus_config()["global"]
    interval, timeout = (promql_parser.parse_duration(glob[k]) for k in ("scrape_interval", "scrape_timeout"))
    collection = re.search(r"--collection-timeout=(\S+)", " ".join(services["postgres-exporter"]["command"]))
    assert collection
    assert promql_parser.parse_duration(collection.group(1)) < timeout <= interval


# --- Grafana provisioning ------------------------------------------------------------------------------


def test_prometheus_datasource_points_at_the_service(services: dict[str, dict[str, Any]]) -> None:
    url = urlsplit(datasources()["prometheus"]["url"])
    assert url.hostname == "prometheus" and url.hostname in services
    assert any(str(p).endswith(f":{url.port}") for p in services["prometheus"]["ports"])


def test_postgres_datasource_reads_the_target_as_the_monitor_role(services: dict[str, dict[str, Any]]) -> None:
    ds = datasources()["quant-postgres"]
    host, _, port = ds["url"].partition(":")
    assert host == "timescaledb" and host in services and int(port) == 5432
    assert ds["jsonData"]["database"] == TARGET_DATABASE
    grafana_env = environment(services["grafana"])
    # $VARIABLE references are expanded by Grafana from its own environment.
    user_var = re.fullmatch(r"\$\{?(\w+)\}?", ds["user"])
    password_var = re.fullmatch(r"\$\{?(\w+)\}?", ds["secureJsonData"]["password"])
    assert user_var and password_var, "credentials must come from the environment"
    assert grafana_env[user_var.group(1)] == environment(services["postgres-exporter"])["DATA_SOURCE_USER"]
    assert grafana_env[password_var.group(1)] == environment(services["postgres-exporter"])["DATA_SOURCE_PASS"]
    # The dashboard's SQL is tested with Grafana's plain (non-time_bucket) macro rendering.
    assert ds["jsonData"]["timescaledb"] is False


def test_dashboards_folder_is_provisioned(services: dict[str, dict[str, Any]]) -> None:
    providers = yaml.safe_load(DASHBOARD_PROVIDERS_FILE.read_text(encoding="utf-8"))["providers"]
    grafana_mounts = mounts(services["grafana"])
    dashboards_target = [t for t, s in grafana_mounts.items() if s.endswith("monitoring/grafana/dashboards")]
    assert [p["options"]["path"] for p in providers] == dashboards_target
    home = PurePosixPath(environment(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert str(home.parent) == dashboards_target[0]
    assert (DASHBOARD_DIR / home.name).is_file()
    provisioning = [s for t, s in grafana_mounts.items() if t == "/etc/grafana/provisioning"]
    assert provisioning and (REPO / provisioning[0]).resolve() == DASHBOARD_PROVIDERS_FILE.parents[1]


# --- the dashboard ---------------------------------------------------------------------------------------


def test_dashboard_identity() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    assert isinstance(board["schemaVersion"], int)
    assert board["refresh"] == "30s"  # the seeds' refresh interval


def test_panel_ids_are_unique() -> None:
    ids = [p["id"] for p in panels(dashboard())]
    assert len(ids) == len(set(ids))


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], int] = {}
    for panel in panels(dashboard()):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = panel["id"]


@pytest.mark.parametrize("panel", [pytest.param(p, id=f"{p['id']}-{p['title']}") for p in data_panels(dashboard())])
def test_panel_queries_a_provisioned_datasource(panel: dict[str, Any]) -> None:
    provisioned = datasources()
    ref = panel["datasource"]
    assert ref["uid"] in provisioned and ref["type"] == provisioned[ref["uid"]]["type"]
    assert panel["targets"], "a panel without a query"
    assert panel.get("description"), "say what the panel shows (and which alert watches it)"
    ref_ids = [t["refId"] for t in panel["targets"]]
    assert len(ref_ids) == len(set(ref_ids))
    for target in panel["targets"]:
        assert target["datasource"] == ref
        kind = provisioned[ref["uid"]]["type"]
        assert (target.get("expr") if kind == "prometheus" else target.get("rawSql")), target


def test_annotations_query_a_provisioned_datasource() -> None:
    for annotation in dashboard()["annotations"]["list"]:
        assert annotation["datasource"]["uid"] in datasources()


@pytest.mark.parametrize(("category", "source"), [pytest.param(c, s, id=c) for c, s in DASHBOARD_COVERAGE.items()])
def test_dashboard_covers_seed_panel(category: str, source: str) -> None:
    board = dashboard()
    metrics = {s.metric for _, expr in promql_targets(board) for s in selectors(expr)}
    sql = " ".join(t["rawSql"] for _, t in sql_targets(board))
    assert source in metrics or re.search(rf"\b{re.escape(source)}\b", sql), f"no panel reads {source}"


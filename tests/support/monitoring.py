"""The files under monitoring/ read the way their consumers read them (no database).

postgres_exporter exports each custom query column as ``<namespace>_<column>``; Grafana panels carry a
datasource reference and PromQL or SQL targets; Prometheus rules carry PromQL. Parsing PromQL uses
promql-parser (Python bindings of the Rust parser); Grafana's own variables are substituted first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import promql_parser
import yaml

from support import REPO

MONITORING = REPO / "monitoring"
QUERIES_FILE = MONITORING / "postgres-exporter" / "queries.yaml"
ROLE_FILE = MONITORING / "postgres" / "create_monitoring_role.sql"
DASHBOARD_DIR = MONITORING / "grafana" / "dashboards"
DASHBOARD_FILE = DASHBOARD_DIR / "quant-db-ops.json"
DATASOURCES_FILE = MONITORING / "grafana" / "provisioning" / "datasources" / "quant-db-ops.yaml"
DASHBOARD_PROVIDERS_FILE = MONITORING / "grafana" / "provisioning" / "dashboards" / "quant-db-ops.yaml"
PROMETHEUS_FILE = MONITORING / "prometheus" / "prometheus.yml"
ALERTS_FILE = MONITORING / "prometheus" / "alerts.yml"

# The standard postgres_exporter v0.20.1 metrics the rules and panels use (names read from its collectors:
# pg_database, stat_database, stat_activity, settings, and the exporter's own gauges), plus the series
# Prometheus itself makes (`up` per target, `ALERTS` per active alert). Anything else must be a quant_*
# metric of queries.yaml.
STANDARD_METRICS = frozenset({
    "pg_up",
    "pg_exporter_last_scrape_error",
    "pg_exporter_user_queries_load_error",
    "pg_database_size_bytes",
    "pg_stat_database_blks_hit",
    "pg_stat_database_blks_read",
    "pg_stat_database_xact_commit",
    "pg_stat_database_xact_rollback",
    "pg_stat_database_deadlocks",
    "pg_stat_activity_count",
    "pg_settings_max_connections",
})
PROMETHEUS_SERIES = frozenset({"up", "ALERTS"})

# Grafana's built-in variables, replaced by a value of their kind before parsing a panel's PromQL.
_GRAFANA_VARIABLES = {"$__rate_interval": "2m", "$__interval": "30s", "$__range": "1h"}
_SQL_MACRO = re.compile(r"\$__(\w+)\(([^()]*)\)")


# --- postgres_exporter custom queries -----------------------------------------------------------------


@cache
def exporter_queries() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(QUERIES_FILE.read_text(encoding="utf-8"))


def declared_columns(spec: dict[str, Any]) -> dict[str, str]:
    """Column -> usage (LABEL, GAUGE, COUNTER), in the order the file declares them."""
    out: dict[str, str] = {}
    for mapping in spec["metrics"]:
        ((column, options),) = mapping.items()
        out[column] = options["usage"]
    return out


def exported_metrics() -> dict[str, str]:
    """Metric name -> namespace, for every non-label column of queries.yaml."""
    return {
        f"{namespace}_{column}": namespace
        for namespace, spec in exporter_queries().items()
        for column, usage in declared_columns(spec).items()
        if usage != "LABEL"
    }


def known_metrics() -> frozenset[str]:
    return frozenset(exported_metrics()) | STANDARD_METRICS | PROMETHEUS_SERIES


# --- PromQL --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op: = != =~ !~, value)


_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def selectors(expr: str) -> list[Selector]:
    """Every series selector of a PromQL expression (raises ValueError when it does not parse)."""
    for variable, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    found: list[Selector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple(
                (m.name, _OPS[str(m.op).split(".")[-1].split("(")[0]], m.value)
                for m in node.matchers.matchers)
            found.append(Selector(node.name or "", matchers))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


# --- Grafana -------------------------------------------------------------------------------------------


@cache
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those nested in collapsed rows included."""
    out = []
    for panel in board.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def data_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Panels that query something (rows only group them)."""
    return [p for p in panels(board) if p.get("type") != "row"]


def sql_targets(board: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, target) for every SQL query of the dashboard: panel targets and annotation queries."""
    out = [(f"panel {p['id']} {p['title']!r}", t) for p in data_panels(board) for t in p.get("targets", [])
           if "rawSql" in t]
    out += [(f"annotation {a['name']!r}", a["target"]) for a in board.get("annotations", {}).get("list", [])
            if "rawSql" in a.get("target", {})]
    return out


def promql_targets(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f"panel {p['id']} {p['title']!r}", t["expr"]) for p in data_panels(board)
            for t in p.get("targets", []) if "expr" in t]


def render_grafana_sql(raw: str, start: datetime, end: datetime) -> str:
    """Expand the macros of Grafana's PostgreSQL datasource (``timescaledb: false``) as it renders them;
    an unknown macro or a leftover variable is an error, not a silent pass."""

    def iso(ts: datetime) -> str:
        return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def expand(match: re.Match[str]) -> str:
        name, args = match.group(1), [a.strip() for a in match.group(2).split(",")]
        if name == "timeFilter":
            return f"{args[0]} BETWEEN '{iso(start)}' AND '{iso(end)}'"
        if name == "timeFrom":
            return f"'{iso(start)}'"
        if name == "timeTo":
            return f"'{iso(end)}'"
        if name == "timeGroupAlias":
            seconds = _interval_seconds(args[1].strip("'"))
            return f'floor(extract(epoch from {args[0]})/{seconds})*{seconds} AS "time"'
        raise ValueError(f"unknown Grafana macro $__{name}")

    rendered = _SQL_MACRO.sub(expand, raw)
    if "$" in rendered:
        raise ValueError(f"unrendered Grafana variable or macro in: {rendered}")
    return rendered


def _interval_seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)([smhd])", text)
    if not match:
        raise ValueError(f"unsupported interval {text!r}")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


@cache
def datasources() -> dict[str, dict[str, Any]]:
    """Provisioned datasources by uid."""
    data = yaml.safe_load(DATASOURCES_FILE.read_text(encoding="utf-8"))
    return {ds["uid"]: ds for ds in data["datasources"]}


# --- Prometheus ----------------------------------------------------------------------------------------


@cache
def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))


@cache
def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]

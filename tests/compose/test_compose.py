"""Static checks of the local stack (docker-compose.yaml) and the Astro settings (airflow_settings.yaml).

No Docker engine is involved: both files are parsed as YAML, and compose's `${VAR:-default}`
substitution is emulated with an empty environment, i.e. what a fresh checkout without a .env gets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from support import REPO
from support.compose import SETTINGS_FILE, TARGET_DATABASE, environment, mounts, raw_compose

REQUIREMENTS_FILE = REPO / "requirements.txt"

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
)
AIRFLOW_HOME = PurePosixPath("/opt/airflow")
POOL_NAME = "quant_db_heavy"
POOL_SLOTS = 2
BACKUP_BUCKET = "quant-db-backups"
# conn_id -> conn_type; the ids are fixed because every DAG refers to them.
CONNECTIONS = {"quant_postgres": "postgres", "quant_s3": "aws", "spock_sqlite": "sqlite"}


def _services_with_depends_on() -> list[Any]:
    # Parametrisation happens at collection time; a missing/broken file is reported by the tests
    # themselves (through the fixtures) rather than as a collection error.
    try:
        services = raw_compose()["services"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return []
    return [pytest.param(name, id=name) for name in sorted(services) if services[name].get("depends_on")]


def command_text(service: dict[str, Any]) -> str:
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key)
        if isinstance(value, list):
            parts.extend(str(item) for item in value)
        elif value is not None:
            parts.append(str(value))
    return "\n".join(parts)


def compose_connection(service: dict[str, Any], conn_id: str) -> dict[str, Any]:
    value = environment(service)[f"AIRFLOW_CONN_{conn_id.upper()}"]
    assert value.lstrip().startswith("{"), f"{conn_id} should use the JSON connection form"
    return json.loads(value)


def settings_connection(settings: dict[str, Any], conn_id: str) -> dict[str, Any]:
    matches = [conn for conn in settings.get("connections") or [] if conn.get("conn_id") == conn_id]
    assert len(matches) == 1, f"expected exactly one {conn_id} in {SETTINGS_FILE.name}, got {len(matches)}"
    return matches[0]


# --- services ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("airflow-apiserver", id="api-server"),
        pytest.param("airflow-scheduler", id="scheduler"),
        pytest.param("airflow-dag-processor", id="dag-processor"),
        pytest.param("airflow-triggerer", id="triggerer"),
        pytest.param("airflow-worker", id="worker"),
        pytest.param("airflow-init", id="airflow-init"),
        pytest.param("redis", id="redis"),
        pytest.param("postgres", id="metadata-postgres"),
        pytest.param("timescaledb", id="timescaledb"),
        pytest.param("minio", id="minio"),
        pytest.param("minio-init", id="minio-init"),
    ],
)
def test_required_service_exists(services: dict[str, dict[str, Any]], name: str) -> None:
    assert name in services


@pytest.mark.parametrize(
    ("name", "command"),
    [
        pytest.param("airflow-apiserver", "api-server", id="api-server"),
        pytest.param("airflow-scheduler", "scheduler", id="scheduler"),
        pytest.param("airflow-dag-processor", "dag-processor", id="dag-processor"),
        pytest.param("airflow-triggerer", "triggerer", id="triggerer"),
        pytest.param("airflow-worker", "celery worker", id="worker"),
    ],
)
def test_airflow_component_runs_its_command(
    services: dict[str, dict[str, Any]], name: str, command: str
) -> None:
    # The official image's entrypoint prefixes `airflow`, so the command is the bare sub-command.
    assert command_text(services[name]).strip() == command


@pytest.mark.parametrize("name", [pytest.param(name, id=name) for name in AIRFLOW_SERVICES])
def test_executor_is_celery(services: dict[str, dict[str, Any]], name: str) -> None:
    assert environment(services[name]).get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param("AIRFLOW__CELERY__BROKER_URL", "redis://:@redis:6379/0", id="broker-is-redis"),
        pytest.param("AIRFLOW__CORE__LOAD_EXAMPLES", "false", id="no-examples"),
        pytest.param("AIRFLOW__CORE__DEFAULT_TIMEZONE", "Asia/Seoul", id="timezone"),
        pytest.param(
            "AIRFLOW__CORE__AUTH_MANAGER",
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            id="auth-manager",
        ),
    ],
)
def test_airflow_setting(services: dict[str, dict[str, Any]], key: str, expected: str) -> None:
    for name in AIRFLOW_SERVICES:
        assert environment(services[name]).get(key, "").lower() == expected.lower(), name


def test_execution_api_url_targets_the_api_server(services: dict[str, dict[str, Any]]) -> None:
    # Workers fetch connections and report state through this URL; a wrong host or port only
    # shows up when the first task runs.
    apiserver = services["airflow-apiserver"]
    container_ports = {str(port).split(":")[-1] for port in apiserver.get("ports") or []}
    for name in AIRFLOW_SERVICES:
        url = urlsplit(environment(services[name])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert url.hostname == "airflow-apiserver", name
        assert str(url.port) in container_ports, name
        assert url.path.rstrip("/") == "/execution", name


def test_jwt_secret_is_shared_by_all_components(services: dict[str, dict[str, Any]]) -> None:
    # Without one common secret each component generates its own and rejects the others' tokens.
    secrets = {
        environment(services[name]).get("AIRFLOW__API_AUTH__JWT_SECRET", "") for name in AIRFLOW_SERVICES
    }
    assert len(secrets) == 1
    assert secrets.pop()


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", id="metadata-db"),
        pytest.param("AIRFLOW__CELERY__RESULT_BACKEND", id="celery-result-backend"),
    ],
)
def test_metadata_urls_match_postgres_service(services: dict[str, dict[str, Any]], key: str) -> None:
    postgres_env = environment(services["postgres"])
    url = urlsplit(environment(services["airflow-scheduler"])[key])
    assert url.hostname == "postgres"
    assert url.username == postgres_env["POSTGRES_USER"]
    assert url.password == postgres_env["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres_env["POSTGRES_DB"]


@pytest.mark.parametrize(
    "check",
    [pytest.param("container_name", id="no-container-name"), pytest.param("ports", id="no-host-ports")],
)
def test_worker_is_scalable(services: dict[str, dict[str, Any]], check: str) -> None:
    # `--scale airflow-worker=N` fails on a fixed container name or a fixed host port.
    worker = services["airflow-worker"]
    if check == "container_name":
        assert "container_name" not in worker
    else:
        published = [
            port
            for port in worker.get("ports") or []
            if (isinstance(port, dict) and port.get("published")) or (isinstance(port, str) and ":" in port)
        ]
        assert published == []


def test_image_builds_on_the_airflow_release_in_requirements(services: dict[str, dict[str, Any]]) -> None:
    pinned = re.search(r"^apache-airflow==(\S+)", REQUIREMENTS_FILE.read_text(encoding="utf-8"), re.M)
    assert pinned, "requirements.txt should pin apache-airflow"
    for name in AIRFLOW_SERVICES:
        dockerfile = services[name]["build"]["dockerfile_inline"]
        base = re.search(r"^FROM\s+apache/airflow:(\S+)", dockerfile, re.M)
        assert base, name
        assert base.group(1) == f"{pinned.group(1)}-python3.11", name


def test_requirements_are_installed_at_build_time(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = services["airflow-worker"]["build"]["dockerfile_inline"]
    assert re.search(r"^COPY\s+requirements\.txt\s", dockerfile, re.M)
    assert re.search(r"^RUN\s+pip install\b.*-r\s+/requirements\.txt", dockerfile, re.M)
    for name in AIRFLOW_SERVICES:
        # Installing at every container start is what the official compose file warns against.
        assert not environment(services[name]).get("_PIP_ADDITIONAL_REQUIREMENTS"), name


def test_timescaledb_image_is_2_28_on_pg15_or_newer(services: dict[str, dict[str, Any]]) -> None:
    image = services["timescaledb"]["image"]
    match = re.fullmatch(r"timescale/timescaledb(?:-ha)?:(\d+)\.(\d+)\.(\d+)-pg(\d+)", image)
    assert match, f"unexpected timescaledb image tag: {image}"
    major, minor, _patch, pg_major = (int(group) for group in match.groups())
    assert (major, minor) == (2, 28)
    assert pg_major >= 15


@pytest.mark.parametrize(
    "library",
    [
        pytest.param("timescaledb", id="timescaledb"),
        pytest.param("pg_stat_statements", id="pg_stat_statements"),
    ],
)
def test_timescaledb_preloads_library(services: dict[str, dict[str, Any]], library: str) -> None:
    match = re.search(r"shared_preload_libraries=(\S+)", command_text(services["timescaledb"]))
    assert match
    assert library in match.group(1).strip("'\"").split(",")


def test_timescaledb_creates_the_target_database(services: dict[str, dict[str, Any]]) -> None:
    assert environment(services["timescaledb"])["POSTGRES_DB"] == TARGET_DATABASE


@pytest.mark.parametrize(
    "folder",
    [pytest.param(folder, id=folder) for folder in ("dags", "plugins", "include", "data", "logs", "config")],
)
def test_project_folder_is_mounted_into_airflow_services(
    services: dict[str, dict[str, Any]], folder: str
) -> None:
    for name in AIRFLOW_SERVICES:
        source = mounts(services[name]).get(str(AIRFLOW_HOME / folder))
        assert source is not None, f"{name} does not mount {AIRFLOW_HOME / folder}"
        assert PurePosixPath(source).parts[-1] == folder, name


# --- connections ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conn_id", "conn_type"), [pytest.param(cid, ctype, id=cid) for cid, ctype in CONNECTIONS.items()]
)
def test_connection_defined_in_compose(
    services: dict[str, dict[str, Any]], conn_id: str, conn_type: str
) -> None:
    for name in AIRFLOW_SERVICES:
        assert compose_connection(services[name], conn_id)["conn_type"] == conn_type, name


@pytest.mark.parametrize(
    ("conn_id", "conn_type"), [pytest.param(cid, ctype, id=cid) for cid, ctype in CONNECTIONS.items()]
)
def test_connection_defined_in_settings(settings: dict[str, Any], conn_id: str, conn_type: str) -> None:
    assert settings_connection(settings, conn_id)["conn_type"] == conn_type


def test_quant_postgres_points_at_timescaledb(services: dict[str, dict[str, Any]]) -> None:
    conn = compose_connection(services["airflow-worker"], "quant_postgres")
    assert conn["host"] == "timescaledb"
    assert conn["host"] in services
    assert int(conn["port"]) == 5432
    # For postgres connections Airflow's `schema` field is the database name.
    assert conn["schema"] == TARGET_DATABASE


def test_quant_s3_points_at_minio(services: dict[str, dict[str, Any]]) -> None:
    conn = compose_connection(services["airflow-worker"], "quant_s3")
    endpoint = conn["extra"]["endpoint_url"]
    assert endpoint == "http://minio:9000"
    assert urlsplit(endpoint).hostname in services
    assert conn["extra"]["region_name"]


def test_spock_sqlite_points_into_the_mounted_data_folder(services: dict[str, dict[str, Any]]) -> None:
    path = PurePosixPath(compose_connection(services["airflow-worker"], "spock_sqlite")["host"])
    assert path == AIRFLOW_HOME / "data" / "spock_local.db"
    assert str(path.parent) in mounts(services["airflow-worker"])


def test_sqlite_path_is_the_same_file_in_both_files(
    services: dict[str, dict[str, Any]], settings: dict[str, Any]
) -> None:
    # Compose's container path, mapped back through the ./data bind mount, is the project-relative
    # path airflow_settings.yaml uses.
    container_path = PurePosixPath(compose_connection(services["airflow-worker"], "spock_sqlite")["host"])
    source = PurePosixPath(mounts(services["airflow-worker"])[str(container_path.parent)])
    project_relative = PurePosixPath(*[part for part in source.parts if part != "."]) / container_path.name
    assert str(project_relative) == settings_connection(settings, "spock_sqlite")["conn_host"]


@pytest.mark.parametrize(
    ("conn_id", "service", "user_key", "password_key"),
    [
        pytest.param(
            "quant_postgres", "timescaledb", "POSTGRES_USER", "POSTGRES_PASSWORD", id="quant_postgres"
        ),
        pytest.param("quant_s3", "minio", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", id="quant_s3"),
    ],
)
def test_connection_credentials_match_the_service(
    services: dict[str, dict[str, Any]], conn_id: str, service: str, user_key: str, password_key: str
) -> None:
    # Both sides read the same variables, so overriding one in .env cannot desynchronise them.
    conn = compose_connection(services["airflow-worker"], conn_id)
    service_env = environment(services[service])
    assert (conn["login"], conn["password"]) == (service_env[user_key], service_env[password_key])


@pytest.mark.parametrize(
    "conn_id", [pytest.param("quant_postgres", id="quant_postgres"), pytest.param("quant_s3", id="quant_s3")]
)
def test_connection_credentials_come_from_variables(
    raw_services: dict[str, dict[str, Any]], conn_id: str
) -> None:
    conn = compose_connection(raw_services["airflow-worker"], conn_id)
    for field in ("login", "password"):
        assert re.fullmatch(r"\$\{\w+:-[^}]*\}", conn[field]), f"{conn_id}.{field} is hard-coded"


@pytest.mark.parametrize(
    ("service", "key"),
    [
        pytest.param("airflow-apiserver", "AIRFLOW__API_AUTH__JWT_SECRET", id="jwt-secret"),
        pytest.param("postgres", "POSTGRES_PASSWORD", id="metadata-db-password"),
        pytest.param("timescaledb", "POSTGRES_PASSWORD", id="timescaledb-password"),
        pytest.param("minio", "MINIO_ROOT_PASSWORD", id="minio-password"),
        pytest.param("airflow-init", "_AIRFLOW_WWW_USER_PASSWORD", id="ui-password"),
    ],
)
def test_secret_is_overridable(raw_services: dict[str, dict[str, Any]], service: str, key: str) -> None:
    assert re.fullmatch(r"\$\{\w+:-[^}]*\}", environment(raw_services[service])[key])


@pytest.mark.parametrize("conn_id", [pytest.param(cid, id=cid) for cid in CONNECTIONS])
def test_compose_connection_parses_as_airflow_connection(
    services: dict[str, dict[str, Any]], conn_id: str
) -> None:
    sdk = pytest.importorskip("airflow.sdk")
    value = environment(services["airflow-worker"])[f"AIRFLOW_CONN_{conn_id.upper()}"]
    conn = sdk.Connection.from_json(value, conn_id=conn_id)
    assert conn.conn_type == CONNECTIONS[conn_id]
    assert conn.host or conn.extra_dejson.get("endpoint_url")


@pytest.mark.parametrize(
    ("conn_id", "field", "expected"),
    [
        pytest.param("quant_postgres", "conn_host", "localhost", id="quant_postgres-host"),
        pytest.param("quant_postgres", "conn_port", 5432, id="quant_postgres-port"),
        pytest.param("quant_postgres", "conn_schema", TARGET_DATABASE, id="quant_postgres-schema"),
        pytest.param("quant_postgres", "conn_login", "quant_user", id="quant_postgres-login"),
        pytest.param("spock_sqlite", "conn_host", "data/spock_local.db", id="spock_sqlite-host"),
    ],
)
def test_settings_connection_field(settings: dict[str, Any], conn_id: str, field: str, expected: Any) -> None:
    assert settings_connection(settings, conn_id)[field] == expected


@pytest.mark.parametrize(
    "key", [pytest.param("endpoint_url", id="endpoint_url"), pytest.param("region_name", id="region_name")]
)
def test_settings_s3_extra(settings: dict[str, Any], key: str) -> None:
    extra = settings_connection(settings, "quant_s3")["conn_extra"]
    assert extra[key]
    if key == "endpoint_url":
        assert urlsplit(extra[key]).scheme in {"http", "https"}


@pytest.mark.parametrize("conn_id", [pytest.param(cid, id=cid) for cid in CONNECTIONS])
def test_settings_commit_no_passwords(settings: dict[str, Any], conn_id: str) -> None:
    # Real passwords come from a secrets backend or AIRFLOW_CONN_* variables, never from git.
    conn = settings_connection(settings, conn_id)
    assert not conn.get("conn_password")
    assert not conn.get("conn_uri")


# --- pool ----------------------------------------------------------------------------------------


def test_pool_created_by_airflow_init(services: dict[str, dict[str, Any]]) -> None:
    match = re.search(rf"airflow pools set\s+{POOL_NAME}\s+(\d+)\s", command_text(services["airflow-init"]))
    assert match, f"airflow-init does not create the {POOL_NAME} pool"
    assert int(match.group(1)) == POOL_SLOTS


def test_pool_created_after_db_migrate(services: dict[str, dict[str, Any]]) -> None:
    # `pools set` writes to the metadata DB, so the schema must exist first.
    script = command_text(services["airflow-init"])
    migrate, pool = script.find("airflow db migrate"), script.find("airflow pools set")
    assert 0 <= migrate < pool


def test_pool_defined_in_settings(settings: dict[str, Any]) -> None:
    pools = [pool for pool in settings.get("pools") or [] if pool.get("pool_name") == POOL_NAME]
    assert len(pools) == 1
    assert pools[0]["pool_slot"] == POOL_SLOTS
    assert pools[0].get("pool_description")


# --- backup bucket -------------------------------------------------------------------------------


def test_bucket_created_on_compose_minio(services: dict[str, dict[str, Any]]) -> None:
    script = command_text(services["minio-init"])
    bucket = re.search(rf"mc\s+mb\s+(?:--\S+\s+)*(\S+)/{BACKUP_BUCKET}\b", script)
    assert bucket, f"minio-init does not create {BACKUP_BUCKET}"
    aliases = dict(re.findall(r"mc\s+alias\s+set\s+(\S+)\s+(\S+)", script))
    assert aliases.get(bucket.group(1)) == "http://minio:9000"


def test_minio_init_waits_for_healthy_minio(services: dict[str, dict[str, Any]]) -> None:
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"


# --- dependencies and health ---------------------------------------------------------------------


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Target -> condition; the short list form means `service_started`."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


@pytest.mark.parametrize("name", _services_with_depends_on())
def test_depends_on_targets_exist(services: dict[str, dict[str, Any]], name: str) -> None:
    assert set(_depends_on(services[name])) <= set(services)


@pytest.mark.parametrize("name", _services_with_depends_on())
def test_healthy_dependencies_have_healthchecks(services: dict[str, dict[str, Any]], name: str) -> None:
    # `service_healthy` on a target without a healthcheck makes `up` fail.
    for target, condition in _depends_on(services[name]).items():
        # Missing targets are reported by test_depends_on_targets_exist.
        if condition == "service_healthy" and target in services:
            healthcheck = services[target].get("healthcheck") or {}
            assert healthcheck.get("test") and not healthcheck.get("disable"), target


@pytest.mark.parametrize("name", _services_with_depends_on())
def test_completed_dependencies_are_one_shot(services: dict[str, dict[str, Any]], name: str) -> None:
    # A restarting service never counts as "completed successfully", so dependents would hang.
    for target, condition in _depends_on(services[name]).items():
        if condition == "service_completed_successfully" and target in services:
            assert services[target].get("restart", "no") == "no", target


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("postgres", id="metadata-postgres"),
        pytest.param("redis", id="redis"),
        pytest.param("timescaledb", id="timescaledb"),
        pytest.param("minio", id="minio"),
    ],
)
def test_healthcheck_defined(services: dict[str, dict[str, Any]], name: str) -> None:
    healthcheck = services[name].get("healthcheck") or {}
    assert healthcheck.get("test")
    assert not healthcheck.get("disable")


def test_timescaledb_healthcheck_uses_pg_isready(services: dict[str, dict[str, Any]]) -> None:
    test = services["timescaledb"]["healthcheck"]["test"]
    assert "pg_isready" in (" ".join(test) if isinstance(test, list) else test)


# --- monitoring profile --------------------------------------------------------------------------

MONITORING_PROFILE = "monitoring"
MONITORING_SERVICES = ("monitoring-roles", "postgres-exporter", "prometheus", "grafana")
# Pinned release tags: an image tag never moves under a `docker compose pull`.
MONITORING_IMAGES = {
    "postgres-exporter": r"quay\.io/prometheuscommunity/postgres-exporter:v\d+\.\d+\.\d+",
    "prometheus": r"prom/prometheus:v\d+\.\d+\.\d+",
    "grafana": r"grafana/grafana:\d+\.\d+\.\d+",
}
MONITOR_ROLE = "quant_monitor"
MONITOR_PASSWORD_VAR = "QUANT_MONITOR_PASSWORD"


def _host_ports(service: dict[str, Any]) -> list[int]:
    out = []
    for port in service.get("ports") or []:
        parts = str(port).split(":")
        if len(parts) >= 2:
            out.append(int(parts[-2]))
    return out


def _project_path(source: str) -> Path | None:
    """A bind-mount source as a path in the repository (None for a named volume)."""
    if not source.startswith((".", "/")):
        return None
    return (REPO / source).resolve()


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in MONITORING_SERVICES])
def test_monitoring_service_is_only_in_its_profile(services: dict[str, dict[str, Any]], name: str) -> None:
    assert services[name].get("profiles") == [MONITORING_PROFILE]


def test_plain_up_starts_no_monitoring_service(services: dict[str, dict[str, Any]]) -> None:
    # `docker compose up` starts the services without a profile; none may be, or need, a profiled one.
    default = {name for name, svc in services.items() if not svc.get("profiles")}
    assert not default & set(MONITORING_SERVICES)
    for name in default:
        needed = set(_depends_on(services[name]))
        assert not {n for n in needed if services.get(n, {}).get("profiles")}, name


@pytest.mark.parametrize(("name", "pattern"), [pytest.param(n, p, id=n) for n, p in MONITORING_IMAGES.items()])
def test_monitoring_image_is_pinned(services: dict[str, dict[str, Any]], name: str, pattern: str) -> None:
    assert re.fullmatch(pattern, services[name]["image"]), services[name]["image"]


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in MONITORING_SERVICES])
def test_monitoring_mounts_exist_in_the_repository(services: dict[str, dict[str, Any]], name: str) -> None:
    binds = {target: _project_path(source) for target, source in mounts(services[name]).items()}
    binds = {target: path for target, path in binds.items() if path is not None}
    assert binds, f"{name} mounts nothing from ./monitoring"
    for target, path in binds.items():
        assert path.exists(), f"{name}: {path} (mounted at {target}) is not in the repository"
        assert REPO / "monitoring" in path.parents, f"{name}: {path} is outside ./monitoring"


def test_host_ports_are_unique(services: dict[str, dict[str, Any]]) -> None:
    ports = [port for svc in services.values() for port in _host_ports(svc)]
    assert len(ports) == len(set(ports)), sorted(ports)


@pytest.mark.parametrize(("name", "port"), [pytest.param("prometheus", 9090, id="prometheus"),
                                            pytest.param("grafana", 3000, id="grafana")])
def test_monitoring_ui_is_published(services: dict[str, dict[str, Any]], name: str, port: int) -> None:
    assert any(str(p).endswith(f":{port}") for p in services[name]["ports"])
    assert _host_ports(services[name])


@pytest.mark.parametrize(
    ("name", "target", "condition"),
    [
        pytest.param("monitoring-roles", "timescaledb", "service_healthy", id="roles-after-timescaledb"),
        pytest.param("postgres-exporter", "timescaledb", "service_healthy", id="exporter-after-timescaledb"),
        pytest.param("postgres-exporter", "monitoring-roles", "service_completed_successfully",
                     id="exporter-after-roles"),
        pytest.param("prometheus", "postgres-exporter", "service_healthy", id="prometheus-after-exporter"),
        pytest.param("grafana", "prometheus", "service_healthy", id="grafana-after-prometheus"),
        pytest.param("grafana", "monitoring-roles", "service_completed_successfully", id="grafana-after-roles"),
    ],
)
def test_monitoring_start_order(
    services: dict[str, dict[str, Any]], name: str, target: str, condition: str
) -> None:
    assert _depends_on(services[name]).get(target) == condition


def test_monitoring_roles_runs_the_role_file_against_the_target(services: dict[str, dict[str, Any]]) -> None:
    roles, tsdb = services["monitoring-roles"], services["timescaledb"]
    # Its psql is the server's own version.
    assert roles["image"] == tsdb["image"]
    script = re.search(r"-f\s+(\S+)", command_text(roles))
    assert script, "monitoring-roles does not run a file with psql -f"
    directory, filename = PurePosixPath(script.group(1)).parent, PurePosixPath(script.group(1)).name
    source = _project_path(mounts(roles)[str(directory)])
    assert source is not None and (source / filename).is_file()
    env, tsdb_env = environment(roles), environment(tsdb)
    assert env["PGHOST"] == "timescaledb" and int(env["PGPORT"]) == 5432
    assert env["PGDATABASE"] == TARGET_DATABASE
    # The superuser of the image: only it can grant pg_monitor.
    assert (env["PGUSER"], env["PGPASSWORD"]) == (tsdb_env["POSTGRES_USER"], tsdb_env["POSTGRES_PASSWORD"])
    assert re.search(rf"CREATE ROLE {MONITOR_ROLE}\b", (source / filename).read_text(encoding="utf-8"))


def test_exporter_reads_the_target_as_the_monitor_role(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["postgres-exporter"])
    assert env["DATA_SOURCE_URI"].split("?")[0] == f"timescaledb:5432/{TARGET_DATABASE}"
    assert env["DATA_SOURCE_USER"] == MONITOR_ROLE


def test_exporter_custom_queries_file_is_mounted(services: dict[str, dict[str, Any]]) -> None:
    exporter = services["postgres-exporter"]
    match = re.search(r"--extend\.query-path=(\S+)", command_text(exporter))
    assert match
    source = _project_path(mounts(exporter)[match.group(1)])
    assert source == REPO / "monitoring" / "postgres-exporter" / "queries.yaml"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        pytest.param("monitoring-roles", MONITOR_PASSWORD_VAR, id="roles"),
        pytest.param("postgres-exporter", "DATA_SOURCE_PASS", id="exporter"),
        pytest.param("grafana", MONITOR_PASSWORD_VAR, id="grafana"),
    ],
)
def test_monitor_password_is_one_overridable_variable(
    raw_services: dict[str, dict[str, Any]], name: str, key: str
) -> None:
    # The role's password and the two clients' must come from the same variable, or logins fail.
    assert re.fullmatch(rf"\$\{{{MONITOR_PASSWORD_VAR}:-[^}}]+\}}", environment(raw_services[name])[key])


def test_monitor_password_defaults_agree(services: dict[str, dict[str, Any]]) -> None:
    values = {
        environment(services["monitoring-roles"])[MONITOR_PASSWORD_VAR],
        environment(services["postgres-exporter"])["DATA_SOURCE_PASS"],
        environment(services["grafana"])[MONITOR_PASSWORD_VAR],
    }
    assert len(values) == 1 and values != {""}


@pytest.mark.parametrize(
    ("service", "key"),
    [
        pytest.param("grafana", "GF_SECURITY_ADMIN_PASSWORD", id="grafana-admin-password"),
        pytest.param("grafana", "GF_SECURITY_ADMIN_USER", id="grafana-admin-user"),
    ],
)
def test_grafana_login_is_overridable(raw_services: dict[str, dict[str, Any]], service: str, key: str) -> None:
    assert re.fullmatch(r"\$\{\w+:-[^}]*\}", environment(raw_services[service])[key])


def test_alert_connection_reaches_the_services_that_send_alerts(services: dict[str, dict[str, Any]]) -> None:
    """Workers send task alerts and the dag-processor run alerts: both read the alert connection,
    which is empty (no alerts, said once per failure in the log) unless the operator sets it."""
    from quantdbops.notifiers import CONN_ALERTS

    var = f"AIRFLOW_CONN_{CONN_ALERTS.upper()}"
    raw = (REPO / "docker-compose.yaml").read_text(encoding="utf-8")
    assert f"{var}: ${{{var}:-}}" in raw  # taken from the operator's environment, empty by default
    for name in AIRFLOW_SERVICES:
        assert var in environment(services[name]), f"{name} does not get {var}"


def test_workers_share_no_volume_for_backups(services: dict[str, dict[str, Any]]) -> None:
    """No task hands a file to another: the workers mount code, data, logs and config, never a named volume
    (a shared backup volume would hide a step that reads another worker's file)."""
    worker = services["airflow-worker"]
    named = {target: source for target, source in mounts(worker).items() if not source.startswith(("/", "."))}
    assert named == {}, named
    backup_dir = environment(worker)["QUANT_BACKUP_DIR"]
    assert backup_dir not in mounts(worker)  # the container's own disk, for optional local copies only

"""docker-compose.yaml and airflow_settings.yaml read as their tools read them, for the compose tier's tests.

No Docker engine is involved: both files are parsed as YAML, and compose's `${VAR:-default}` substitution is
emulated with an empty environment, i.e. what a fresh checkout without a .env gets.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import yaml

from support import REPO

COMPOSE_FILE = REPO / "docker-compose.yaml"
SETTINGS_FILE = REPO / "airflow_settings.yaml"
TARGET_DATABASE = "quant_platform"

# Compose interpolation: `$$` escapes a dollar; `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
# `${VAR:?error}`, `${VAR:+alt}` and bare `$VAR`.
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>\w+)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def _substitute(match: re.Match[str]) -> str:
    if match.group(0) == "$$":
        return "$"
    op = match.group("op") or ""
    if op.endswith("-"):
        return match.group("arg")
    if op.endswith("?"):
        raise ValueError(f"required variable {match.group('name')} has no default: {match.group(0)}")
    # Unset with no default (or `:+alt`, which only applies when set) interpolates to "".
    return ""


def interpolate(node: Any) -> Any:
    """Return ``node`` with compose variables resolved as if no variable were set."""
    if isinstance(node, str):
        return _INTERPOLATION.sub(_substitute, node)
    if isinstance(node, list):
        return [interpolate(item) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value) for key, value in node.items()}
    return node


@cache
def raw_compose() -> dict[str, Any]:
    """docker-compose.yaml as written (variables not substituted)."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        # List form: ["KEY=value", "KEY_WITHOUT_VALUE"].
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container target -> source of a service's volumes, short or long syntax."""
    result: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            result[volume["target"]] = str(volume.get("source", ""))
        else:
            source, target = str(volume).split(":")[:2]
            result[target] = source
    return result

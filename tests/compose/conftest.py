"""The compose tier's fixtures: docker-compose.yaml and airflow_settings.yaml as read (tests/support/compose.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from support.compose import SETTINGS_FILE, interpolate, raw_compose


@pytest.fixture(scope="module")
def raw_services() -> dict[str, dict[str, Any]]:
    """Services exactly as written (variables not substituted)."""
    return raw_compose()["services"]


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    """Services as compose would run them with an empty environment."""
    return interpolate(raw_compose())["services"]


@pytest.fixture(scope="module")
def settings() -> dict[str, Any]:
    return yaml.safe_load(SETTINGS_FILE.read_text(encoding="utf-8"))["airflow"]

"""The integrity tier's fixtures: the DagBag of dags/, as the dag-processor parses it."""

from __future__ import annotations

from typing import Any

import pytest

from support import REPO


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))

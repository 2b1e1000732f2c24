"""The DAG files as the tests load them: each executed as a module of its own (dags/ is no package on sys.path)."""

from __future__ import annotations

import importlib.util
from typing import Any

from support import REPO

DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))


def load_dag(file_stem: str) -> Any:
    """The DAG object that ``dags/<file_stem>.py`` builds."""
    spec = importlib.util.spec_from_file_location(f"{file_stem}_under_test", REPO / "dags" / f"{file_stem}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag

"""Every DAG file of the bundle: imports cleanly and follows the house policy.

Covers whatever is in dags/ as files arrive: no import errors, dag_id from the file name, an owner,
retries, doc_md, tags from the closed vocabulary, no work at import time, and a cheap parse.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from quantdbops.dag_policy import OWNER, TAGS
from support import REPO
from support.dags import DAG_FILES

FORBIDDEN_AT_IMPORT = ("connect(", "Variable.get(", "get_connection(", "open(", "Hook(")


def test_there_are_dag_files() -> None:
    assert DAG_FILES, "dags/ holds no DAG file"


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in DAG_FILES])
def test_dag_id_is_the_file_name(dagbag, path: Path) -> None:
    assert path.stem in dagbag.dags
    assert dagbag.dags[path.stem].fileloc.endswith(path.name)


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in DAG_FILES])
def test_policy(dagbag, path: Path) -> None:
    dag = dagbag.dags[path.stem]
    assert dag.doc_md and len(dag.doc_md) > 400, "doc_md must be the runbook"
    assert set(dag.tags) <= TAGS, f"tags outside the vocabulary: {set(dag.tags) - TAGS}"
    assert "quant-db-ops" in dag.tags
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    for task in dag.tasks:
        assert task.owner == OWNER, task.task_id
        assert task.on_failure_callback, f"{task.task_id} has no failure callback"
        assert task.execution_timeout is not None, task.task_id


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in DAG_FILES])
def test_no_work_at_import_time(path: Path) -> None:
    """Module-level statements only declare: no connections, Variables or file reads."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
            continue
        text = ast.get_source_segment(path.read_text(), node) or ""
        for bad in FORBIDDEN_AT_IMPORT:
            assert bad not in text, f"{path.name}: module-level {bad!r}"


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in DAG_FILES])
def test_parse_time_is_well_under_a_second(path: Path) -> None:
    """Parse in a fresh interpreter with Airflow already imported, as the dag-processor does."""
    code = (
        "import time, importlib.util, airflow.sdk, sys\n"
        f"sys.path.insert(0, {str(REPO / 'plugins')!r})\n"
        "t = time.perf_counter()\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(path)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds = float(out.stdout.strip().splitlines()[-1])
    assert seconds < 1.0, f"{path.name} took {seconds:.2f}s to parse"


def test_migration_params_validate_before_anything_runs(dagbag) -> None:
    """The trigger form's JSON schema refuses an unknown region and an unknown table."""
    from airflow.sdk.definitions.param import ParamsDict

    params = dagbag.dags["migrate_sqlite_to_postgres"].params
    schema_regions = params.get_param("regions").schema
    assert schema_regions["items"]["enum"] == ["KR", "US", "CN", "HK", "JP", "VN"]
    bad = ParamsDict(dict(params.items()))
    with pytest.raises(Exception, match=r"XX|valid"):
        bad["regions"] = ["XX"]
        bad.validate()


def test_migration_shape(dagbag) -> None:
    dag = dagbag.dags["migrate_sqlite_to_postgres"]
    from quantdbops.registry import migratable_tables

    loads = {f"load_{t.name}" for t in migratable_tables()}
    assert loads <= set(dag.task_ids)
    assert dag.get_task("load_tickers").upstream_task_ids == {"prepare"}
    for tid in loads - {"load_tickers"}:
        assert dag.get_task(tid).upstream_task_ids == {"load_tickers"}, tid
    # every load, then pruning tickers (it needs every table's rows replaced), then validate and the aggregates
    assert dag.get_task("prune_tickers").upstream_task_ids == loads
    # (the loads are direct upstreams too: validate and the aggregates receive their results through XCom)
    assert dag.get_task("validate").upstream_task_ids == {"prune_tickers"} | loads
    assert dag.get_task("refresh_aggregates").upstream_task_ids == {"prune_tickers"} | loads
    assert dag.get_task("validate").retries == 0
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual only

"""Every DAG alerts on failure: each task through ``TaskFailureAlert``, each run through ``RunFailureAlert``."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantdbops.notifiers import CONN_ALERTS, RunFailureAlert, TaskFailureAlert
from support.dags import DAG_FILES


def _as_list(callbacks: object) -> list:
    return callbacks if isinstance(callbacks, list) else [callbacks] if callbacks else []


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in DAG_FILES])
def test_every_task_and_every_run_alerts_the_same_connection(dagbag, path: Path) -> None:
    dag = dagbag.dags[path.stem]
    run_alerts = [c for c in _as_list(dag.on_failure_callback) if isinstance(c, RunFailureAlert)]
    assert [c.conn_id for c in run_alerts] == [CONN_ALERTS], "the DAG needs on_failure_callback=run_failure_alert()"
    for task in dag.tasks:
        task_alerts = [c for c in _as_list(task.on_failure_callback) if isinstance(c, TaskFailureAlert)]
        assert [c.conn_id for c in task_alerts] == [CONN_ALERTS], task.task_id

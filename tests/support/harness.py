"""The test session's own services: its PostgreSQL clusters, the two database modes, the root log handlers.

Nothing here imports Airflow (tests/conftest.py sets Airflow's environment before anything does).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgcluster import Cluster, free_port
from tlscerts import ServerTls

TSDB_SKIP_REASON = (
    "TimescaleDB is not installed for the local PostgreSQL 15 (no timescaledb.control in "
    "/usr/share/postgresql/15/extension); it is not in the package registries this machine reaches"
)
# Parametrise a test with these as ``mode``: the ``cluster`` fixture then gives that mode's cluster.
MODES = [
    pytest.param("postgresql", id="plain"),
    pytest.param("timescaledb", id="timescaledb", marks=pytest.mark.timescaledb),
]


def session_cluster(directory: Path, timescaledb: bool, tls: ServerTls | None = None) -> Iterator[Cluster]:
    """A PostgreSQL 15 cluster in ``directory`` on a free loopback port, for the whole session; destroyed after."""
    cluster = Cluster(directory, free_port(), fsync=False, timescaledb=timescaledb, background_jobs=False, tls=tls)
    cluster.start()
    yield cluster
    cluster.destroy()


def repoint_root_stream_handlers(stream: object, *, only_closed: bool = False) -> None:
    """Point the root logger's plain stream handlers (or only those on a closed stream) at ``stream``.

    Airflow configures logging once per process, with a stream handler on the ``sys.stderr``/``stdout`` of
    that moment: under pytest, one test's capture, closed when that test ends.
    """
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and (not only_closed or getattr(handler.stream, "closed", False)):
            with handler.lock:  # type: ignore[union-attr]  (not setStream: it flushes the closed stream)
                handler.stream = stream

"""What the tests share, holding no test of its own: one module per thing it supports.

- ``harness``: the session's PostgreSQL clusters, the two database modes (``MODES``), the root log handlers;
- ``dags``: the DAG files, each loaded as a module of its own;
- ``migration``, ``backup``, ``quality``, ``maintenance``, ``alerts``: helpers of those DAGs' tests;
- ``monitoring``: the files under monitoring/ read as their consumers read them; ``monitoring_seed``: a
  database seeded for the monitoring queries;
- ``compose``: docker-compose.yaml read as compose reads it;
- ``e2e``: runs, log tables and the browser of the end-to-end tier.

Fixtures are not here: each lives in the conftest.py of the tier that uses it (tests/conftest.py for those
several tiers use).
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

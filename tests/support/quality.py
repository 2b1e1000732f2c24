"""Helpers of the quality tests: loaded sample databases, reused per module.

A database is generated, loaded through the migration's own ``load_table`` and then only read by the
checks; tests that plant defects with SQL do it in a transaction they roll back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pytest

from quantdbops.io.pg import connect
from quantdbops.quality.params import QualityRequest
from quantdbops.schema.apply import apply_schema
from sample import generate
from support.migration import load

DEFECTS = {"tickers_per_region": 3, "days": 70, "seed": 23, "defects": True}
CLEAN = {"tickers_per_region": 3, "days": 70, "seed": 23}


@dataclass
class Loaded:
    dsn: str
    manifest: dict
    mode: str

    @property
    def last_date(self) -> date:
        return date.fromisoformat(self.manifest["last_date"])

    def planted(self, kind: str) -> list[dict]:
        return [e for e in self.manifest["planted"] if e["kind"] == kind]


def request(last: date, **params: object) -> QualityRequest:
    """A request as of the sample's last day, whole history unless said otherwise."""
    return QualityRequest.from_params({"lookback_days": 0, **params}, default_as_of=last)


def rolled_back(dsn: str) -> Iterator[psycopg.Connection]:
    """A transaction on ``dsn``, rolled back when the test ends (what the test planted vanishes)."""
    conn = connect(dsn)
    yield conn
    conn.rollback()
    conn.close()


def loaded_database(request_: pytest.FixtureRequest, tmp: Path, sample: dict) -> Iterator[Loaded]:
    mode = request_.param
    cluster = request_.getfixturevalue("tsdb_cluster" if mode == "timescaledb" else "plain_cluster")
    name = f"q_{uuid.uuid4().hex[:12]}"
    cluster.createdb(name)
    dsn = cluster.dsn(name)
    manifest = generate(tmp / "spock_local.db", **sample)
    with connect(dsn, autocommit=True) as conn:
        apply_schema(conn)
    load(tmp / "spock_local.db", dsn)
    with connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
    yield Loaded(dsn, manifest, mode)
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


__all__ = ["CLEAN", "DEFECTS", "Loaded", "loaded_database", "request", "rolled_back"]

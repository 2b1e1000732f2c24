"""Every data shape of the generator loads through the real loader with exact parity, in both modes.

A shape changes how the sample spells its values (timestamps, REAL digits), never which rows it holds: each
loads with every row kept, every validation check passing (the full-content checksum included), and, with
defects planted, the quarantine equal to the manifest, label for label.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from sample.shapes import SHAPES
from support.harness import MODES
from support.migration import (
    MIGRATABLE,
    failures,
    load,
    make_sample,
    quarantine_labels,
    source_counts,
    target_counts,
    validate,
)

pytestmark = pytest.mark.parametrize("mode", MODES)
SIZE = {"tickers_per_region": 3, "days": 70, "seed": 31}


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_loads_with_exact_parity(
    mode: str, shape: str, tmp_path: Path, pg_dsn: str, schema_conn: psycopg.Connection
) -> None:
    path, manifest = make_sample(tmp_path, **SIZE, shape=shape)
    results = load(path, pg_dsn)
    for t in MIGRATABLE:
        assert target_counts(schema_conn, t) == source_counts(path, t), t.name
        assert results[t.name].loaded == manifest["row_counts"][t.source], t.name
    assert failures(validate(path, pg_dsn)) == []
    checked = {r.table for r in validate(path, pg_dsn) if r.check == "content_checksum" and r.status == "pass"}
    assert checked == {t.name for t in MIGRATABLE}


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "sample"])
def test_each_shape_quarantines_exactly_the_planted_rows(
    mode: str, shape: str, tmp_path: Path, pg_dsn: str, schema_conn: psycopg.Connection
) -> None:
    path, manifest = make_sample(tmp_path, **SIZE, shape=shape, defects=True)
    load(path, pg_dsn)
    planted = {(e["table"], e["rowid"], e["label"]) for e in manifest["planted"] if e["expect"] == "reject"}
    assert quarantine_labels(schema_conn) == planted
    assert failures(validate(path, pg_dsn)) == []

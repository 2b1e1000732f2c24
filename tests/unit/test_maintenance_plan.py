"""The maintenance's plain decisions (no database): vacuum order, index bloat, what to rebuild,
leftover names, growth, params, how a database error is classified and how a locked table is reported."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from quantdbops.maintenance.decisions import (
    IndexBloat,
    TableStats,
    btree_bloat_pct,
    estimated_bloat_pct,
    growth,
    headline,
    is_reindex_leftover,
    reindex_candidates,
    reindex_decision,
    vacuum_order,
)
from quantdbops.maintenance.params import TABLE_NAMES, MaintenanceRequest, ParamError
from quantdbops.maintenance.record import jsonable
from quantdbops.maintenance.session import Timeouts, classify


def _ix(name: str, pct: float | None, size: int, *, am: str = "btree", valid: bool = True) -> IndexBloat:
    return IndexBloat(index=f"public.{name}", schema_name="public", index_name=name, table_name="t",
                      relation="public.t", access_method=am, size_bytes=size, bloat_pct=pct, method="pgstattuple",
                      valid=valid)


def test_vacuum_order_is_largest_dead_share_first_and_skips_clean_relations() -> None:
    stats = [
        TableStats("a", n_live_tup=900, n_dead_tup=100),  # 10 %
        TableStats("b", n_live_tup=100, n_dead_tup=100),  # 50 %
        TableStats("c", n_live_tup=1000, n_dead_tup=0),  # clean, analysed
        TableStats("d", n_live_tup=10, n_dead_tup=0, n_mod_since_analyze=10),  # only needs ANALYZE
        TableStats("e", n_live_tup=5, n_dead_tup=0, never_analyzed=True),
    ]
    order = [s.name for s in vacuum_order(stats)]
    assert order[:2] == ["b", "a"]
    assert "c" not in order and set(order) == {"a", "b", "d", "e"}
    shares = [s.dead_share for s in vacuum_order(stats)]
    assert shares == sorted(shares, reverse=True)


@pytest.mark.parametrize(("leaf", "empty", "deleted", "density", "fill", "expected"), [
    pytest.param(100, 0, 0, 90.0, 90, 0.0, id="fresh-btree-packed-to-fillfactor"),
    pytest.param(100, 0, 0, 45.0, 90, 50.0, id="half-empty-leaves"),
    pytest.param(50, 25, 25, 90.0, 90, 50.0, id="deleted-pages-count-as-waste"),
    pytest.param(0, 0, 0, float("nan"), 90, 0.0, id="empty-index"),
    pytest.param(10, 0, 0, 100.0, 90, 0.0, id="denser-than-fillfactor-is-not-negative"),
])
def test_btree_bloat_from_pgstatindex(leaf: int, empty: int, deleted: int, density: float, fill: int,
                                      expected: float) -> None:
    assert btree_bloat_pct(leaf, empty, deleted, density, fill) == pytest.approx(expected, abs=0.1)


def test_estimated_bloat_share() -> None:
    assert estimated_bloat_pct(100, 25) == 75.0
    assert estimated_bloat_pct(100, 150) == 0.0
    assert estimated_bloat_pct(0, 10) == 0.0


def test_only_indexes_over_threshold_and_size_are_rebuilt_most_waste_first() -> None:
    mb = 1024 * 1024
    items = [_ix("healthy", 10.0, 50 * mb), _ix("small", 80.0, 100 * 1024), _ix("big", 40.0, 100 * mb),
             _ix("worse", 90.0, 10 * mb), _ix("gin", None, 100 * mb, am="gin"),
             _ix("invalid", 99.0, 100 * mb, valid=False)]
    chosen = [c.index_name for c in reindex_candidates(items, 30, mb)]
    assert chosen == ["big", "worse"]  # 40 MB wasted before 9 MB
    reasons = {i.index_name: reindex_decision(i, 30, mb)[1] for i in items}
    assert "<= threshold" in reasons["healthy"] and "kB <" in reasons["small"]
    assert "not measurable" in reasons["gin"] and "invalid" in reasons["invalid"]


@pytest.mark.parametrize(("name", "leftover"), [
    pytest.param("idx_ohlcv_date_ccnew", True, id="ccnew"),
    pytest.param("idx_ohlcv_date_ccnew1", True, id="ccnew-numbered"),
    pytest.param("idx_ohlcv_date_ccold", True, id="ccold"),
    pytest.param("idx_ccnew_by_hand", False, id="ccnew-not-a-suffix"),
    pytest.param("ux_tickers_name", False, id="other-invalid"),
])
def test_reindex_leftover_names(name: str, leftover: bool) -> None:
    assert is_reindex_leftover(name) is leftover


def test_growth_since_last_measurement() -> None:
    now = datetime(2026, 1, 11, 3, 0)
    g = growth(1_700, 1_000, now - timedelta(days=7), now)
    assert g == {"growth_bytes": 700, "growth_pct": 70.0, "bytes_per_day": 100}
    assert growth(1_000, None, None, now)["growth_bytes"] is None


def test_headline_renders_sizes_and_counts() -> None:
    assert headline("vacuum", {"n_dead_tup": 1500, "n_live_tup": 10}) == "n_dead_tup 1,500, n_live_tup 10"
    assert headline("size", {"total_bytes": 2 * 1024 * 1024, "growth_bytes": None}) == "total 2.0 MB"
    assert headline("reindex", None) == ""


def test_params_default_to_the_full_weekly_run_and_refuse_unknown_tables() -> None:
    request = MaintenanceRequest.from_params({})
    assert request.dry_run is False and request.tables == TABLE_NAMES
    picked = MaintenanceRequest.from_params({"tables": ["tickers", "ohlcv_data", "tickers"], "dry_run": True})
    assert picked.tables == ("tickers", "ohlcv_data") and picked.dry_run
    with pytest.raises(ParamError, match="unknown tables"):
        MaintenanceRequest.from_params({"tables": ["ohlcv_data; DROP TABLE tickers"]})
    with pytest.raises(ParamError, match="between"):
        MaintenanceRequest.from_params({"bloat_threshold_pct": 99})
    with pytest.raises(ParamError, match="true or false"):
        MaintenanceRequest.from_params({"dry_run": "yes"})


def test_a_refused_lock_is_skipped_and_other_errors_fail() -> None:
    t = Timeouts(lock_timeout_s=3, statement_timeout_min=45)
    status, message = classify(psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), t)
    assert status == "skipped" and "3s" in message
    status, message = classify(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), t)
    assert status == "failed" and "45min" in message
    status, _ = classify(psycopg.errors.FeatureNotSupported("reindexing of a specific index on a hypertable"), t)
    assert status == "failed"


_HOLDER = {"pid": 4242, "application_name": "psql", "state": "idle in transaction", "mode": "AccessExclusiveLock"}


@pytest.mark.parametrize(("skipped", "held_by", "expected"), [
    pytest.param({"partition": 28}, [_HOLDER], "28 partitions skipped this step (27 of them not attempted): lock "
                 "not granted within lock_timeout 5s on public.t; table locked by pid 4242 (application_name 'psql', "
                 "state 'idle in transaction', holds AccessExclusiveLock).", id="partitions"),
    pytest.param({"index": 1, "chunk": 2}, [_HOLDER], "1 index, 2 chunks skipped this step (2 of them not "
                 "attempted):", id="mixed"),
    pytest.param({"table": 1}, [], "the table skipped this step: lock not granted within lock_timeout 5s on "
                 "public.t; table locked by another session (gone when looked up).", id="unpartitioned-no-holder"),
])
def test_a_locked_tables_message_counts_what_was_skipped_and_names_the_holder(
        skipped: dict[str, int], held_by: list[dict], expected: str) -> None:
    from collections import Counter

    from quantdbops.maintenance.locked import LockedTable

    message = LockedTable("vacuum", "public.t", 5.0, held_by, Counter(skipped)).message("5s")
    assert message.startswith(expected)


def test_record_values_are_json_safe() -> None:
    from decimal import Decimal

    assert jsonable({"a": Decimal("1.5"), "b": float("nan"), "c": datetime(2026, 1, 1)}) == \
        {"a": 1.5, "b": None, "c": "2026-01-01T00:00:00"}

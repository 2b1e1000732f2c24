"""A table another session holds costs each step one lock_timeout, not one per partition, chunk or index.

The holder is a second connection with ``LOCK TABLE public.ohlcv_data IN ACCESS EXCLUSIVE MODE`` open (which
locks every partition or chunk too) while the steps run with ``lock_timeout_s=1``. What is counted is attempts,
never seconds: the record, the steps' results and the server's own log of statements cancelled for a lock
timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import psycopg
import pytest

from quantdbops.io.pg import connect
from quantdbops.registry import table
from quantdbops.schema.partitions import ensure_partitions
from support.harness import MODES
from support.maintenance import (
    bloat_step,
    compress_step,
    lock_timeouts,
    records,
    run,
    say,
    seed_ohlcv,
    seed_tickers,
    vacuum_step,
    wait_for_stats,
    write,
)

HOLDER_APP = "nightly-import"


def _norm(name: str | None) -> str:
    return (name or "").replace('"', "").removeprefix("public.")


def _leaves(conn: psycopg.Connection, parent: str) -> list[str]:
    return [_norm(r[0]) for r in conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = to_regclass(%s) ORDER BY 1", (parent,))]


def _filled(conn: psycopg.Connection, name: str) -> list[str]:
    """The partitions or chunks of a table that hold rows."""
    return [_norm(r[0]) for r in conn.execute(f"SELECT DISTINCT tableoid::regclass::text FROM public.{name}")]


@contextmanager
def _ohlcv_locked(dsn: str, logfile: Any) -> Iterator[dict[str, Any]]:
    """ohlcv_data held exclusively by another session; yields its pid and, after, the lock timeouts meanwhile."""
    holder = connect(dsn, application_name=HOLDER_APP)
    holder.execute("LOCK TABLE public.ohlcv_data IN ACCESS EXCLUSIVE MODE")
    seen: dict[str, Any] = {"pid": holder.info.backend_pid}
    offset = logfile.stat().st_size
    try:
        yield seen
    finally:
        holder.rollback()
        holder.close()
        seen["lock_timeouts"] = lock_timeouts(logfile, offset)


def _about_ohlcv(rows: list[dict[str, Any]], names: set[str]) -> list[dict[str, Any]]:
    """Rows of the run about the locked table or any of its objects."""
    return [r for r in rows if _norm(r["object_name"]) in names | {"ohlcv_data"}]


def _assert_one_record_for_the_table(row: dict[str, Any], skipped: int, noun: str, attempted: set[str],
                                     holder_pid: int) -> None:
    assert row["object_name"] == "public.ohlcv_data" and row["status"] == "skipped"
    assert _norm(row["before"]["attempted"]) in attempted  # one object tried, the rest counted
    assert row["before"]["skipped"] == skipped and sum(row["before"]["by_kind"].values()) == skipped
    assert f"{skipped} {noun}" in row["message"] and f"({skipped - 1} of them not attempted)" in row["message"]
    assert "lock_timeout 1s" in row["message"]
    (held,) = [h for h in row["before"]["held_by"] if h["pid"] == holder_pid]
    assert held == {"pid": holder_pid, "application_name": HOLDER_APP, "state": "idle in transaction",
                    "mode": "AccessExclusiveLock"}
    assert f"pid {holder_pid}" in row["message"] and HOLDER_APP in row["message"]
    assert "LOCK TABLE" not in str(row)  # the holder's query text is never recorded


def _seed_factor_scores(dsn: str, first: str, last: str) -> None:
    write(dsn, "INSERT INTO factor_scores (ticker, region, calculation_date, signal) "
               "SELECT 'T' || lpad(i::text, 6, '0'), 'KR', d::date, 'BUY' FROM generate_series(1, 20) i, "
               "generate_series(%(first)s::date, %(last)s::date, '1 day') d", params={"first": first, "last": last})


@pytest.mark.parametrize("mode", MODES)
def test_a_locked_table_is_tried_once_per_step(mode: str, cluster: Any, pg_dsn: str,
                                               schema_conn: psycopg.Connection) -> None:
    timescaledb = mode == "timescaledb"
    seed_tickers(pg_dsn, 40)
    if not timescaledb:
        for name in ("ohlcv_data", "factor_scores"):
            ensure_partitions(schema_conn, table(name), date(2024, 1, 1), date(2024, 4, 30))
    seed_ohlcv(pg_dsn, 40, "2024-01-01", "2024-04-30")  # older than the 90-day policy: compressible
    _seed_factor_scores(pg_dsn, "2024-01-01", "2024-02-29")
    write(pg_dsn, "UPDATE ohlcv_data SET volume = volume + 1",
          "INSERT INTO strategies (name) SELECT 's' || i FROM generate_series(1, 300) i",
          "UPDATE strategies SET description = 'x'")
    leaves = _leaves(schema_conn, "public.ohlcv_data")  # plain: the schema's empty months ahead too
    dirty, others = _filled(schema_conn, "ohlcv_data"), _filled(schema_conn, "factor_scores")
    assert len(dirty) >= 3
    for rel in dirty:
        wait_for_stats(schema_conn, rel, lambda r: r["n_dead_tup"] > 0)
    for rel in others:
        wait_for_stats(schema_conn, rel, lambda r: r["n_live_tup"] > 0)
    wait_for_stats(schema_conn, "public.strategies", lambda r: r["n_dead_tup"] > 0)
    # What each step would have done to ohlcv_data: vacuum the dirty leaves, measure every leaf, compress the
    # (all old) chunks.
    steps = {"vacuum": (vacuum_step, len(dirty)), "table_bloat": (bloat_step, len(leaves))}
    if timescaledb:
        steps["compress_chunk"] = (compress_step, len(dirty))

    with _ohlcv_locked(pg_dsn, cluster.logfile) as holder:
        results = run(pg_dsn, "locked", *[step for step, _ in steps.values()],
                      tables=["ohlcv_data", "factor_scores", "strategies"], lock_timeout_s=1)

    rows = records(schema_conn, "locked")
    noun = "chunk" if timescaledb else "partition"
    on_ohlcv = _about_ohlcv(rows, set(leaves))
    assert [r["action"] for r in on_ohlcv] == list(steps)  # one record per step, none per partition or chunk
    for row, result, (_, objects) in zip(on_ohlcv, results, steps.values(), strict=True):
        _assert_one_record_for_the_table(row, objects, noun, set(leaves), holder["pid"])
        assert result["locked"] == {"ohlcv_data": objects}
    # The server cancelled one statement per step, each on one partition or chunk of ohlcv_data.
    assert len(holder["lock_timeouts"]) == len(steps), holder["lock_timeouts"]
    # The other tables went on, in every step.
    done = {(r["action"], _norm(r["object_name"])) for r in rows if r["status"] in ("done", "measured")}
    assert {("vacuum", "strategies"), ("table_bloat", "strategies")} <= done
    assert {("vacuum", leaf) for leaf in others} <= done
    if timescaledb:
        assert {("compress_chunk", leaf) for leaf in others} <= done
    assert not [r for r in rows if r["status"] == "failed"]
    for rel in dirty:
        assert wait_for_stats(schema_conn, rel, lambda r: True)["last_vacuum"] is None


@pytest.mark.parametrize("mode", MODES)
def test_a_locked_tables_indexes_are_tried_once_in_the_reindex_step(mode: str, cluster: Any, pg_dsn: str,
                                                                     schema_conn: psycopg.Connection) -> None:
    from quantdbops.maintenance.reindex import reindex_bloated

    seed_tickers(pg_dsn, 2000)
    if mode == "postgresql":
        ensure_partitions(schema_conn, table("ohlcv_data"), date(2024, 1, 1), date(2024, 3, 31))
    seed_ohlcv(pg_dsn, 200, "2024-01-01", "2024-03-31")
    write(pg_dsn, "DELETE FROM ohlcv_data WHERE extract(day FROM date)::int % 4 <> 0 OR right(ticker, 1) IN ('1', '2')",
          "UPDATE tickers SET market_cap = market_cap + 1", "DELETE FROM tickers WHERE right(ticker, 1) IN ('3', '4')",
          "VACUUM ohlcv_data", "VACUUM tickers")
    (measured,) = run(pg_dsn, "measure", bloat_step, tables=["ohlcv_data", "tickers"], bloat_threshold_pct=30,
                      min_index_kb=0)
    on_ohlcv = [c for c in measured["candidates"] if c["table_name"] == "ohlcv_data"]
    elsewhere = [c for c in measured["candidates"] if c["table_name"] != "ohlcv_data"]
    assert len({c["relation"] for c in on_ohlcv}) >= 2 and elsewhere  # indexes of two leaves, and another table's
    # The invalid leftover of an interrupted rebuild on one leaf: the step drops leftovers first.
    leaf = on_ohlcv[0]["relation"]
    with pytest.raises(psycopg.errors.UniqueViolation):
        schema_conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY ohlcv_volume_ccnew ON {leaf} (volume)")
    leftover = f"{leaf.rsplit('.', 1)[0]}.ohlcv_volume_ccnew"

    def reindex_step(s: Any, r: Any) -> Any:
        return reindex_bloated(s.conn, r, s.mode, s.log, s.timeouts, say, measured["candidates"])

    with _ohlcv_locked(pg_dsn, cluster.logfile) as holder:
        (result,) = run(pg_dsn, "locked", reindex_step, tables=["ohlcv_data", "tickers"], lock_timeout_s=1)

    rows = records(schema_conn, "locked")
    names = {_norm(c["index"]) for c in on_ohlcv} | {_norm(leftover)}
    (row,) = _about_ohlcv(rows, names)  # the leftover's drop was refused: nothing more was tried
    assert row["action"] == "drop_invalid_index"
    _assert_one_record_for_the_table(row, 1 + len(on_ohlcv), "indexes", {_norm(leftover)}, holder["pid"])
    assert row["before"]["by_kind"] == {"index": 1 + len(on_ohlcv)}
    assert result["locked"] == {"ohlcv_data": 1 + len(on_ohlcv)} and result["skipped"] == 1 + len(on_ohlcv)
    assert len(holder["lock_timeouts"]) == 1, holder["lock_timeouts"]
    rebuilt = {_norm(r["object_name"]) for r in rows if r["action"] == "reindex" and r["status"] == "done"}
    assert rebuilt == {_norm(c["index"]) for c in elsewhere}  # the other table went on
    assert schema_conn.execute("SELECT to_regclass(%s) IS NOT NULL", (leftover,)).fetchone()[0]  # next week's

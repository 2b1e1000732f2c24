"""The maintenance steps on a real PostgreSQL 15, in both modes where behaviour differs.

Steps are called as the DAG's operators call them (``support.maintenance.run``); every expectation
is derived from the database itself (statistics, relfilenodes, sizes, the catalog), not hard-coded.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from quantdbops import PLATFORM_TZ
from quantdbops.io.pg import connect
from quantdbops.maintenance import plain_upkeep, timescaledb_upkeep
from quantdbops.registry import table
from quantdbops.schema.partitions import partition_bounds, partition_name
from support.harness import MODES
from support.maintenance import (
    bloat_and_reindex_step,
    bloat_step,
    index_state,
    records,
    run,
    say,
    seed_ohlcv,
    seed_tickers,
    sizes_step,
    vacuum_step,
    wait_for_stats,
    write,
)


def _norm(name: str) -> str:
    """A relation name as regclass prints it on the default search_path, without quotes."""
    return name.replace('"', "").removeprefix("public.")


def _dead(row: dict) -> bool:
    return row["n_dead_tup"] > 0


def _leaves(conn: psycopg.Connection, parent: str) -> list[str]:
    """The partitions / chunks of a table (our own catalog query), or the table itself."""
    rows = [r[0] for r in conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = to_regclass(%s)", (parent,))]
    return rows or [parent]


@pytest.mark.parametrize("mode", MODES)
def test_mass_update_dead_tuples_are_vacuumed_largest_share_first(mode: str, pg_dsn: str,
                                                                  schema_conn: psycopg.Connection) -> None:
    today = datetime.now(ZoneInfo(PLATFORM_TZ)).date()
    first_of_month = today.replace(day=1)
    seed_tickers(pg_dsn, 40)
    if mode == "postgresql":
        from quantdbops.schema.partitions import ensure_partitions

        ensure_partitions(schema_conn, table("ohlcv_data"), first_of_month - timedelta(days=40), first_of_month)
    prev_month = (first_of_month - timedelta(days=1)).replace(day=1)
    seed_ohlcv(pg_dsn, 40, str(prev_month), str(today))
    # All of the previous month's rows and a third of this month's rows are rewritten: two different shares.
    write(pg_dsn, f"UPDATE ohlcv_data SET volume = volume + 1 WHERE date < '{first_of_month}'",
          f"UPDATE ohlcv_data SET volume = volume + 1 WHERE date >= '{first_of_month}' AND volume % 3 = 0")
    leaves = _leaves(schema_conn, "public.ohlcv_data")
    before = {}
    for rel in leaves:
        row = wait_for_stats(schema_conn, rel, lambda r: r["n_dead_tup"] > 0 or r["n_live_tup"] == 0)
        before[rel] = (row["n_dead_tup"], row["n_live_tup"])
    dirty = [r for r in leaves if before[r][0] > 0]
    assert len(dirty) >= 2

    run(pg_dsn, "vac", vacuum_step, tables=["ohlcv_data"])

    for rel in dirty:
        after = wait_for_stats(schema_conn, rel, lambda r: r["last_vacuum"] is not None, seconds=3)
        assert after["n_dead_tup"] < before[rel][0], rel
        assert after["n_dead_tup"] == 0, rel
    done = [r for r in records(schema_conn, "vac", "vacuum") if r["status"] == "done"]
    logged = {r["object_name"].replace('"', ""): r for r in done}
    for rel in dirty:
        rec = logged[rel.replace('"', "") if "." in rel else f"public.{rel}"]
        assert rec["before"]["n_dead_tup"] == before[rel][0]
        assert rec["after"]["n_dead_tup"] == 0
    # Largest dead-tuple share first: the record's order follows the shares measured before the run.
    shares = [(r["before"]["n_dead_tup"] / max(r["before"]["n_dead_tup"] + r["before"]["n_live_tup"], 1)) for r in done]
    assert shares == sorted(shares, reverse=True)
    assert shares[0] > shares[-1]


def _bloat_tickers_and_keep_fx_healthy(dsn: str) -> None:
    seed_tickers(dsn, 20000)
    # Index-column updates (never HOT) and deletes leave the market-cap index mostly empty after VACUUM.
    write(dsn, "UPDATE tickers SET market_cap = market_cap + 1", "UPDATE tickers SET market_cap = market_cap + 1",
          "DELETE FROM tickers WHERE right(ticker, 1) IN ('1', '2', '3', '4', '5', '6', '7')", "VACUUM tickers")
    # Inserted in key order once: a packed, healthy primary key of a comparable size.
    write(dsn, "INSERT INTO exchange_rate_history (currency, rate, timestamp, rate_date) "
               "SELECT 'C' || lpad(c::text, 2, '0'), 1 + c, now(), date '2000-01-01' + d "
               "FROM generate_series(1, 20) c, generate_series(0, 999) d ORDER BY 1, 4", "VACUUM exchange_rate_history")


@pytest.mark.parametrize("mode", MODES)
def test_bloated_index_is_rebuilt_and_a_healthy_one_is_not(mode: str, pg_dsn: str,
                                                           schema_conn: psycopg.Connection) -> None:
    _bloat_tickers_and_keep_fx_healthy(pg_dsn)
    bloated, healthy = "public.idx_tickers_market_cap", "public.exchange_rate_history_pkey"
    (node_b, size_b), (node_h, size_h) = index_state(schema_conn, bloated), index_state(schema_conn, healthy)

    run(pg_dsn, "rx", bloat_and_reindex_step, tables=["tickers", "exchange_rate_history"], bloat_threshold_pct=30,
        min_index_kb=64)

    new_node, new_size = index_state(schema_conn, bloated)
    assert new_node != node_b and new_size < size_b
    assert index_state(schema_conn, healthy) == (node_h, size_h)
    measured = {r["object_name"].replace('"', ""): r for r in records(schema_conn, "rx", "index_bloat")}
    assert measured[healthy]["after"]["bloat_pct"] <= 30 < measured[bloated]["after"]["bloat_pct"]
    assert measured[healthy]["after"]["size_bytes"] >= 64 * 1024  # not rebuilt for its bloat, not its size
    rebuilt = records(schema_conn, "rx", "reindex")
    assert [(r["object_name"].replace('"', ""), r["status"]) for r in rebuilt
            if r["object_name"].replace('"', "") in (bloated, healthy)] == [(bloated, "done")]
    rec = next(r for r in rebuilt if r["object_name"].replace('"', "") == bloated)
    assert rec["before"]["relfilenode"] == node_b and rec["after"]["relfilenode"] == new_node
    assert rec["after"]["size_bytes"] == new_size < rec["before"]["size_bytes"]
    assert rec["after"]["bloat_pct"] < rec["before"]["bloat_pct"]  # measured again after the rebuild
    assert schema_conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                               (bloated,)).fetchone()[0]


@pytest.mark.parametrize("mode", MODES)
def test_chunk_or_partition_indexes_are_rebuilt_one_by_one(mode: str, pg_dsn: str,
                                                           schema_conn: psycopg.Connection) -> None:
    """The hypertable's own index cannot be reindexed concurrently: its chunk's index is; plain: the partition's."""
    seed_tickers(pg_dsn, 400)
    if mode == "postgresql":
        from quantdbops.schema.partitions import ensure_partitions

        ensure_partitions(schema_conn, table("ohlcv_data"), date(2024, 1, 1), date(2024, 1, 31))
    seed_ohlcv(pg_dsn, 400, "2024-01-01", "2024-01-31")
    write(pg_dsn, "DELETE FROM ohlcv_data WHERE extract(day FROM date)::int % 4 <> 0 "
                  "OR right(ticker, 1) IN ('1', '2', '3')", "VACUUM ohlcv_data")
    leaf = schema_conn.execute("SELECT tableoid::regclass::text FROM ohlcv_data LIMIT 1").fetchone()[0]
    idx = schema_conn.execute(  # the leaf's copy of idx_ohlcv_date (date DESC)
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = to_regclass(%s) "
        "AND pg_get_indexdef(indexrelid) LIKE %s", (leaf, "%(date DESC)")).fetchone()[0]
    node, size = index_state(schema_conn, idx)
    parent_node = index_state(schema_conn, "public.idx_ohlcv_date")

    run(pg_dsn, "leaf", bloat_and_reindex_step, tables=["ohlcv_data"], bloat_threshold_pct=30, min_index_kb=16)

    assert index_state(schema_conn, idx)[0] != node and index_state(schema_conn, idx)[1] < size
    if mode == "timescaledb":
        assert index_state(schema_conn, "public.idx_ohlcv_date") == parent_node  # never touched
    done = [r["object_name"].replace('"', "") for r in records(schema_conn, "leaf", "reindex") if r["status"] == "done"]
    assert _norm(idx) in {_norm(n) for n in done}
    if mode == "timescaledb":
        assert all(name.startswith("_timescaledb_internal.") for name in done)  # chunk indexes only
    else:
        assert all(name.startswith("public.ohlcv_data_p") for name in done)  # partition indexes only
    assert not [r for r in records(schema_conn, "leaf") if r["status"] == "failed"]


def test_leftover_invalid_index_is_dropped_and_others_reported(pg_dsn: str, schema_conn: psycopg.Connection) -> None:
    seed_tickers(pg_dsn, 200)
    write(pg_dsn, "UPDATE tickers SET name = 'same' WHERE ticker < 'T000100'")
    for name in ("idx_tickers_sector_ccnew", "ux_tickers_name_by_hand"):
        with pytest.raises(psycopg.errors.UniqueViolation):
            schema_conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON public.tickers (name)")
    invalid = {r[0] for r in schema_conn.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid")}
    assert invalid == {"idx_tickers_sector_ccnew", "ux_tickers_name_by_hand"}

    run(pg_dsn, "dry", bloat_and_reindex_step, tables=["tickers"], dry_run=True)
    assert index_state(schema_conn, "public.idx_tickers_sector_ccnew") is not None  # a dry run drops nothing
    run(pg_dsn, "clean", bloat_and_reindex_step, tables=["tickers"])

    assert index_state(schema_conn, "public.idx_tickers_sector_ccnew") is None
    assert index_state(schema_conn, "public.ux_tickers_name_by_hand") is not None
    got = {r["object_name"].replace('"', ""): r["status"] for r in records(schema_conn, "clean", "drop_invalid_index")}
    assert got == {"public.idx_tickers_sector_ccnew": "done", "public.ux_tickers_name_by_hand": "skipped"}
    dry = {r["object_name"].replace('"', ""): r["status"] for r in records(schema_conn, "dry", "drop_invalid_index")}
    assert dry["public.idx_tickers_sector_ccnew"] == "dry_run"


@pytest.mark.parametrize("mode", MODES)
def test_locked_table_is_skipped_within_the_lock_timeout(mode: str, pg_dsn: str,
                                                         schema_conn: psycopg.Connection) -> None:
    seed_tickers(pg_dsn, 300)
    write(pg_dsn, "UPDATE tickers SET market_cap = market_cap + 1",
          "INSERT INTO strategies (name) SELECT 's' || i FROM generate_series(1, 300) i",
          "UPDATE strategies SET description = 'x'")
    wait_for_stats(schema_conn, "public.tickers", _dead)
    wait_for_stats(schema_conn, "public.strategies", _dead)
    holder = connect(pg_dsn)  # a transaction that holds the table exclusively for the whole run
    holder.execute("LOCK TABLE public.tickers IN ACCESS EXCLUSIVE MODE")
    try:
        run(pg_dsn, "locked", vacuum_step, bloat_and_reindex_step, sizes_step,
            tables=["tickers", "strategies"], lock_timeout_s=1, min_index_kb=0)
    finally:
        holder.rollback()
        holder.close()
    rows = records(schema_conn, "locked")
    on_tickers = [r for r in rows if (r["object_name"] or "").replace('"', "").startswith("public.tickers")]
    assert {(r["action"], r["status"]) for r in on_tickers} == {("vacuum", "skipped"), ("table_bloat", "skipped"),
                                                               ("size", "skipped")}
    for r in on_tickers:
        assert "lock_timeout" in r["message"]
        assert r["duration_s"] is None or float(r["duration_s"]) < 5  # gave up after ~1 s, never waited on
    vac = {r["object_name"].replace('"', ""): r["status"] for r in rows if r["action"] == "vacuum"}
    assert vac["public.strategies"] == "done"  # the run went on with the rest
    assert wait_for_stats(schema_conn, "public.strategies", lambda r: True)["last_vacuum"] is not None
    assert wait_for_stats(schema_conn, "public.tickers", lambda r: True)["last_vacuum"] is None
    assert not [r for r in rows if r["status"] == "failed"]


def test_plain_mode_creates_next_months_partitions(pg_dsn: str, schema_conn: psycopg.Connection) -> None:
    today = datetime.now(ZoneInfo(PLATFORM_TZ)).date()
    last = plain_upkeep.add_months(today, 6)
    partitioned = [n for n in ("ohlcv_data", "factor_scores", "backtest_results", "api_logs")]
    expected = {n: [partition_name(table(n), s) for s, _ in partition_bounds(table(n), today.replace(day=1), last)]
                for n in partitioned}
    missing_before = {n: plain_upkeep.missing_partitions(schema_conn, n, today.replace(day=1), last)
                      for n in partitioned}
    assert all(missing_before.values())  # schema apply creates 3 months ahead, 6 were asked

    def step(s: object, r: object) -> object:
        return plain_upkeep.create_partitions_ahead(s.conn, r, s.log, s.timeouts, say)  # type: ignore[attr-defined]

    run(pg_dsn, "dry", step, tables=partitioned, months_ahead=6, dry_run=True)
    assert {n: plain_upkeep.missing_partitions(schema_conn, n, today.replace(day=1), last) for n in partitioned} \
        == missing_before
    run(pg_dsn, "ahead", step, tables=partitioned, months_ahead=6)

    for n in partitioned:
        existing = {r[0] for r in schema_conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)", (f"public.{n}",))}
        assert set(expected[n]) <= existing, n
    logged = {r["object_name"]: r["after"]["created"] for r in records(schema_conn, "ahead", "create_partitions")}
    assert logged == {f"public.{n}": missing_before[n] for n in partitioned}


@pytest.mark.timescaledb
@pytest.mark.parametrize("mode", [pytest.param("timescaledb", id="timescaledb")])
def test_timescaledb_compresses_old_chunks_and_refreshes_aggregates(mode: str, pg_dsn: str,
                                                                    schema_conn: psycopg.Connection) -> None:
    today = datetime.now(ZoneInfo(PLATFORM_TZ)).date()
    seed_tickers(pg_dsn, 10)
    seed_ohlcv(pg_dsn, 10, str(today - timedelta(days=200)), str(today))
    rows_before = schema_conn.execute("SELECT count(*), sum(volume) FROM ohlcv_data").fetchone()
    old = {r[0] for r in schema_conn.execute(
        "SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'ohlcv_data' AND range_end <= now() - interval '90 days'")}
    recent = {r[0] for r in schema_conn.execute(
        "SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'ohlcv_data' AND range_end > now() - interval '90 days'")}
    assert old and recent

    def step(s: object, r: object) -> object:
        out = timescaledb_upkeep.compress_old_chunks(s.conn, r, s.mode, s.log, s.timeouts, say)  # type: ignore[attr-defined]
        timescaledb_upkeep.refresh_aggregates(s.conn, r, s.log, s.timeouts, say)  # type: ignore[attr-defined]
        timescaledb_upkeep.report_chunks(s.conn, r, s.mode, s.log, s.timeouts)  # type: ignore[attr-defined]
        timescaledb_upkeep.report_jobs(s.conn, s.log)  # type: ignore[attr-defined]
        return out

    run(pg_dsn, "ts", step, tables=["ohlcv_data"])

    compressed = {r[0]: r[1] for r in schema_conn.execute(
        "SELECT format('%I.%I', chunk_schema, chunk_name), is_compressed FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'ohlcv_data'")}
    assert all(compressed[c] for c in old) and not any(compressed[c] for c in recent)
    assert schema_conn.execute("SELECT count(*), sum(volume) FROM ohlcv_data").fetchone() == rows_before
    done = {r["object_name"] for r in records(schema_conn, "ts", "compress_chunk") if r["status"] == "done"}
    assert done == old
    ratio = records(schema_conn, "ts", "compression_ratio")[0]["after"]
    assert ratio["compressed_chunks"] == len(old) and ratio["ratio"] > 1
    counts = records(schema_conn, "ts", "chunk_count")[0]["after"]
    assert counts == {"chunks": len(old) + len(recent), "compressed": len(old), "uncompressed": len(recent)}
    monthly = schema_conn.execute("SELECT count(*) FROM ohlcv_monthly").fetchone()[0]
    assert monthly == schema_conn.execute("SELECT count(DISTINCT (ticker, date_trunc('month', date))) "
                                          "FROM ohlcv_data WHERE timeframe = 'D'").fetchone()[0]
    # The test cluster runs no background workers: every policy job is reported as never run.
    jobs = schema_conn.execute("SELECT count(*) FROM timescaledb_information.jobs WHERE job_id >= 1000").fetchone()[0]
    assert len(records(schema_conn, "ts", "timescaledb_job")) == jobs > 0


def test_estimate_is_used_without_pgstattuple(pg_dsn: str, schema_conn: psycopg.Connection) -> None:
    _bloat_tickers_and_keep_fx_healthy(pg_dsn)
    schema_conn.execute("DROP EXTENSION pgstattuple")
    write(pg_dsn, "ANALYZE tickers", "ANALYZE exchange_rate_history")

    (measured,) = run(pg_dsn, "est", bloat_step, tables=["tickers", "exchange_rate_history"], min_index_kb=64)

    assert measured["method"] == "estimate"
    rows = {r["object_name"].replace('"', ""): r["after"] for r in records(schema_conn, "est", "index_bloat")}
    assert rows["public.idx_tickers_market_cap"]["method"] == "estimate"
    candidates = {c["index"].replace('"', "") for c in measured["candidates"]}
    assert "public.idx_tickers_market_cap" in candidates
    assert "public.exchange_rate_history_pkey" not in candidates


def test_sizes_report_growth_since_the_last_run(pg_dsn: str, schema_conn: psycopg.Connection) -> None:
    seed_tickers(pg_dsn, 100)
    run(pg_dsn, "week1", sizes_step, tables=["tickers"])
    first = schema_conn.execute("SELECT pg_total_relation_size('public.tickers')").fetchone()[0]
    seed_tickers(pg_dsn, 3000)
    run(pg_dsn, "week2", sizes_step, tables=["tickers"])
    second = schema_conn.execute("SELECT pg_total_relation_size('public.tickers')").fetchone()[0]
    (rec,) = [r for r in records(schema_conn, "week2", "size") if r["object_name"] == "public.tickers"]
    assert rec["before"]["total_bytes"] == first
    assert rec["after"]["total_bytes"] == second
    assert rec["after"]["growth_bytes"] == second - first > 0
    db = [r for r in records(schema_conn, "week2", "size") if r["object_name"].startswith("database ")]
    assert db and db[0]["after"]["growth_bytes"] is not None


def test_slow_queries_are_reported_from_pg_stat_statements(pg_dsn: str, schema_conn: psycopg.Connection) -> None:
    from quantdbops.maintenance.usage import slow_queries

    write(pg_dsn, "SELECT pg_sleep(0.3)")

    def step(s: object, r: object) -> object:
        return slow_queries(s.conn, r, s.log)  # type: ignore[attr-defined]

    (found,) = run(pg_dsn, "slow", step, tables=["tickers"], slow_query_min_ms=200, slow_query_top_n=5)
    assert any("pg_sleep" in q["query"] for q in found)
    assert all(q["mean_ms"] > 200 for q in found)
    assert len(records(schema_conn, "slow", "slow_query")) == len(found)

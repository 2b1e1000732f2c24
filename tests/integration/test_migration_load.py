"""The migration's load and validation on a real PostgreSQL 15, in both modes.

Loads go through ``load_table`` and checks through ``Validator``, exactly as the DAG's tasks call them;
every expected number is derived from the SQLite file (our own SQL) or from the generator's manifest.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from quantdbops.migration.source_plan import SliceFilter
from quantdbops.registry import OHLCV_DATA
from sample import generate
from support import REPO
from support.harness import MODES
from support.migration import (
    CLEAN_SAMPLE,
    DEFECTS_SAMPLE,
    MIGRATABLE,
    duplicate_keys,
    failures,
    fingerprint,
    fingerprints,
    load,
    make_sample,
    ops_counts,
    quarantine_labels,
    source_counts,
    table,
    target_counts,
    validate,
)

pytestmark = pytest.mark.parametrize("mode", MODES)
# Tables with a time column: what a date filter slices (the others are loaded whole).
DATED = [t.name for t in MIGRATABLE if t.time_column]


@pytest.fixture(scope="module")
def clean_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return make_sample(tmp_path_factory.mktemp("clean"), **CLEAN_SAMPLE)


@pytest.fixture(scope="module")
def defects_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return make_sample(tmp_path_factory.mktemp("defects"), **DEFECTS_SAMPLE)


def _ohlcv_dates(path: Path) -> list[date]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as s:
        return [date.fromisoformat(r[0]) for r in s.execute("SELECT DISTINCT date FROM ohlcv_data ORDER BY 1")]


def _source_row(path: Path, table: str, rowid: int) -> dict:
    s = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    s.row_factory = sqlite3.Row
    try:
        row = s.execute(f'SELECT * FROM "{table}" WHERE rowid = ?', (rowid,)).fetchone()
    finally:
        s.close()
    assert row is not None, f"{table} rowid {rowid} not in the source"
    return dict(row)


# --- 1. clean sample: exact parity ------------------------------------------------------------------------
def test_clean_sample_loads_with_exact_parity_per_table_and_region(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, clean_sample: tuple[Path, dict]
) -> None:
    path, manifest = clean_sample
    results = load(path, pg_dsn)
    for t in MIGRATABLE:
        expected = source_counts(path, t)
        assert sum(expected.values()) == manifest["row_counts"][t.source], t.name  # our SQL reads every row
        assert None not in expected, f"{t.name}: a clean row without a region"
        assert target_counts(schema_conn, t) == expected, t.name
        assert results[t.name].loaded == results[t.name].source_rows == sum(expected.values()), t.name
    assert ops_counts(schema_conn)["migration_rejects"] == 0
    checks = validate(path, pg_dsn)
    assert failures(checks) == []
    content_passed = {r.table for r in checks if r.check == "content_checksum" and r.status == "pass"}
    assert content_passed == {t.name for t in MIGRATABLE}


# --- 2. slices: regions and dates -------------------------------------------------------------------------
def test_region_filter_loads_only_those_regions_and_all_market_wide_rows(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, clean_sample: tuple[Path, dict]
) -> None:
    path, _ = clean_sample
    chosen = ("KR", "US")
    assert set(source_counts(path, OHLCV_DATA)) - set(chosen), "the sample must hold other regions too"
    flt = SliceFilter(regions=chosen)
    load(path, pg_dsn, flt=flt)
    for t in MIGRATABLE:
        got = target_counts(schema_conn, t)
        if t.has_region:
            assert set(got) <= set(chosen), t.name
            assert got == source_counts(path, t, regions=chosen), t.name
        else:  # market-wide: loaded whatever regions were picked
            assert got == source_counts(path, t), t.name
    assert set(target_counts(schema_conn, OHLCV_DATA)) == set(chosen)
    assert failures(validate(path, pg_dsn, flt=flt)) == []


def test_region_rerun_after_a_full_load_leaves_other_regions_untouched(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, clean_sample: tuple[Path, dict]
) -> None:
    path, _ = clean_sample
    load(path, pg_dsn, run_id="full")
    first = fingerprints(schema_conn)
    pick = "SELECT ticker, region, date FROM ohlcv_data WHERE region = %s ORDER BY ticker, date LIMIT 1"
    key = "ticker = %s AND region = %s AND date = %s AND timeframe = 'D'"
    inside, outside = (schema_conn.execute(pick, (r,)).fetchone() for r in ("KR", "JP"))
    for row in (inside, outside):
        schema_conn.execute(f"UPDATE ohlcv_data SET volume = volume + 7 WHERE {key}", row)
    others_before = schema_conn.execute(
        "SELECT count(*), md5(string_agg(x::text, '|' ORDER BY x::text)) FROM (SELECT * FROM ohlcv_data "
        "WHERE region <> ALL(%s)) x", (["KR", "US"],)).fetchone()

    load(path, pg_dsn, flt=SliceFilter(regions=("KR", "US")), run_id="kr-us")

    assert schema_conn.execute(
        "SELECT count(*), md5(string_agg(x::text, '|' ORDER BY x::text)) FROM (SELECT * FROM ohlcv_data "
        "WHERE region <> ALL(%s)) x", (["KR", "US"],)).fetchone() == others_before  # not even rewritten
    schema_conn.execute(f"UPDATE ohlcv_data SET volume = volume - 7 WHERE {key}", outside)
    assert fingerprints(schema_conn) == first  # KR's change was undone by the reload, nothing else moved
    assert failures(validate(path, pg_dsn)) == []


def test_date_filter_loads_only_rows_in_the_range(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, clean_sample: tuple[Path, dict]
) -> None:
    path, _ = clean_sample
    days = _ohlcv_dates(path)
    start, end = days[len(days) // 3], days[2 * len(days) // 3]
    flt = SliceFilter(start_date=start, end_date=end)
    load(path, pg_dsn, flt=flt)
    for t in MIGRATABLE:
        # undated tables are loaded whole: source_counts ignores the range for them
        assert target_counts(schema_conn, t) == source_counts(path, t, start=start, end=end), t.name
        if t.time_column:
            lo, hi = schema_conn.execute(
                f'SELECT min("{t.time_column}")::date, max("{t.time_column}")::date FROM public."{t.name}"'
            ).fetchone()
            assert lo is None or start <= lo <= hi <= end, t.name
    # both ends are inclusive
    on_edges = schema_conn.execute(
        "SELECT count(*) FILTER (WHERE date = %s), count(*) FILTER (WHERE date = %s) FROM ohlcv_data",
        (start, end)).fetchone()
    assert on_edges[0] > 0 and on_edges[1] > 0
    # (undated tables: see test_validation_of_a_date_filtered_run_passes_for_undated_tables)
    assert failures(validate(path, pg_dsn, DATED, flt=flt)) == []


def test_validation_of_a_date_filtered_run_passes_for_undated_tables(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, clean_sample: tuple[Path, dict]
) -> None:
    path, _ = clean_sample
    days = _ohlcv_dates(path)
    flt = SliceFilter(start_date=days[len(days) // 3], end_date=days[2 * len(days) // 3])
    load(path, pg_dsn, flt=flt)
    undated = [t.name for t in MIGRATABLE if not t.time_column]
    assert undated
    for name in undated:  # the load itself is right: whole tables, exact counts
        assert target_counts(schema_conn, table(name)) == source_counts(path, table(name)), name
    assert failures(validate(path, pg_dsn, undated, flt=flt)) == []


def test_narrower_rerun_replaces_only_its_range_and_leaves_the_rest(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, clean_sample: tuple[Path, dict]
) -> None:
    path, _ = clean_sample
    days = _ohlcv_dates(path)
    start, end = days[len(days) // 3], days[2 * len(days) // 3]
    load(path, pg_dsn, run_id="full")
    key = "ticker = %s AND region = %s AND date = %s AND timeframe = 'D'"
    inside, outside = (schema_conn.execute(
        f"SELECT ticker, region, date FROM ohlcv_data WHERE {cond} ORDER BY ticker, region, date LIMIT 1",
        (start, end)).fetchone() for cond in ("date BETWEEN %s AND %s", "NOT (date BETWEEN %s AND %s)"))
    # Changes the narrower load must undo (inside its range) and must not touch (outside it).
    for row in (inside, outside):
        schema_conn.execute(f"UPDATE ohlcv_data SET volume = volume + 7 WHERE {key}", row)
    outside_before = {}
    for t in MIGRATABLE:
        if t.time_column:
            outside_before[t.name] = schema_conn.execute(
                f'SELECT count(*), md5(coalesce(string_agg(x::text, \'|\' ORDER BY x::text), \'\')) FROM '
                f'(SELECT * FROM public."{t.name}" WHERE NOT ("{t.time_column}"::date BETWEEN %s AND %s)) x',
                (start, end)).fetchone()
    undated_before = fingerprints(schema_conn, [t.name for t in MIGRATABLE if not t.time_column])
    checksums_outside = schema_conn.execute(
        "SELECT count(*), sum(checksum) FROM ops.migration_checksums WHERE NOT (day BETWEEN %s AND %s)",
        (start, end)).fetchone()

    flt = SliceFilter(start_date=start, end_date=end)
    load(path, pg_dsn, flt=flt, run_id="narrow")

    for name, before in outside_before.items():
        t = next(t for t in MIGRATABLE if t.name == name)
        after = schema_conn.execute(
            f'SELECT count(*), md5(coalesce(string_agg(x::text, \'|\' ORDER BY x::text), \'\')) FROM '
            f'(SELECT * FROM public."{name}" WHERE NOT ("{t.time_column}"::date BETWEEN %s AND %s)) x',
            (start, end)).fetchone()
        assert after == before, f"{name}: rows outside {start}..{end} changed"
    assert fingerprints(schema_conn, list(undated_before)) == undated_before
    assert schema_conn.execute(
        "SELECT count(*), sum(checksum) FROM ops.migration_checksums WHERE NOT (day BETWEEN %s AND %s)",
        (start, end)).fetchone() == checksums_outside
    src_volume = {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as s:
        for row in (inside, outside):
            src_volume[row] = s.execute(
                "SELECT volume FROM ohlcv_data WHERE ticker = ? AND region = ? AND date = ? AND timeframe = 'D'",
                (row[0], row[1], row[2].isoformat())).fetchone()[0]
    volumes = {row: schema_conn.execute(f"SELECT volume FROM ohlcv_data WHERE {key}", row).fetchone()[0]
               for row in (inside, outside)}
    assert volumes[inside] == src_volume[inside]  # reloaded from the source
    assert volumes[outside] == src_volume[outside] + 7  # untouched
    for t in MIGRATABLE:
        in_range = source_counts(path, t, start=start, end=end)
        if t.time_column:
            region = "region" if t.has_region else "'ALL'"
            got = dict(schema_conn.execute(
                f'SELECT {region}, count(*) FROM public."{t.name}" '
                f'WHERE "{t.time_column}"::date BETWEEN %s AND %s GROUP BY 1', (start, end)).fetchall())
            assert got == in_range, t.name
    assert failures(validate(path, pg_dsn, DATED, flt=flt)) == []


# --- 3. dry run -------------------------------------------------------------------------------------------
def test_dry_run_balances_and_writes_nothing(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, defects_sample: tuple[Path, dict]
) -> None:
    path, manifest = defects_sample
    results = load(path, pg_dsn, dry_run=True)
    assert set(results) == {t.name for t in MIGRATABLE}
    rejected_by_table: Counter = Counter()
    for t in MIGRATABLE:
        r = results[t.name]
        assert r.dry_run
        assert r.source_rows == sum(source_counts(path, t).values()), t.name
        assert r.source_rows == r.loaded + sum(r.rejected.values()), t.name
        for region, st in r.regions.items():
            assert st.source_rows == st.loaded + st.rejected_rows, (t.name, region)
        for reason, n in r.rejected.items():
            rejected_by_table[(t.name, reason)] += n
    planted = Counter((e["table"], e["reason"]) for e in manifest["planted"] if e["expect"] == "reject")
    assert rejected_by_table == planted
    assert all(n == 0 for n, _ in fingerprints(schema_conn).values())
    assert ops_counts(schema_conn) == dict.fromkeys(ops_counts(schema_conn), 0)


# --- 4. defects: rejects, mapped rows, kept duplicates ------------------------------------------------------
def test_defects_are_rejected_or_mapped_exactly_as_planted(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, defects_sample: tuple[Path, dict]
) -> None:
    path, manifest = defects_sample
    planted = manifest["planted"]
    load(path, pg_dsn)

    # every planted reject with its rule's label (reason:detail), and nothing else
    expected = {(e["table"], e["rowid"], e["label"]) for e in planted if e["expect"] == "reject"}
    assert quarantine_labels(schema_conn) == expected
    declared = {(r["table"], r["label"]) for r in manifest["rules"] if r["rowids"] and "why" not in r}
    assert declared <= {(table_name, label) for table_name, _, label in expected}  # each such rule shows

    maps = [e for e in planted if e["expect"] == "map"]
    assert {e["kind"] for e in maps} == {"null_region", "timeframe_1d"}
    for e in maps:
        src = _source_row(path, "ohlcv_data", e["rowid"])
        region = e["mapped"].get("region", src["region"])
        timeframe = e["mapped"].get("timeframe", src["timeframe"])
        row = schema_conn.execute(
            "SELECT close, volume FROM ohlcv_data WHERE ticker = %s AND region = %s AND date = %s "
            "AND timeframe = %s", (src["ticker"], region, src["date"], timeframe)).fetchone()
        assert row == (Decimal(repr(src["close"])), src["volume"]), e
        assert region == e["region"] and timeframe == "D"
    assert schema_conn.execute("SELECT count(*) FROM ohlcv_data WHERE timeframe <> 'D'").fetchone()[0] == 0

    dups = [e for e in planted if e["kind"] == "duplicate_spelling"]
    assert dups
    for e in dups:
        kept = _source_row(path, "ohlcv_data", e["kept_rowid"])
        rows = schema_conn.execute(
            "SELECT close, volume FROM ohlcv_data WHERE ticker = %s AND region = %s AND date = %s "
            "AND timeframe = %s", (kept["ticker"], kept["region"], kept["date"], kept["timeframe"])).fetchall()
        assert rows == [(Decimal(repr(kept["close"])), kept["volume"])], e

    for e in planted:
        if e["kind"] == "extreme_return":  # valid rows: loaded as they are
            src = _source_row(path, "ohlcv_data", e["rowid"])
            assert schema_conn.execute(
                "SELECT close FROM ohlcv_data WHERE ticker = %s AND region = %s AND date = %s AND timeframe = 'D'",
                (src["ticker"], src["region"], src["date"])).fetchone() == (Decimal(repr(src["close"])),)

    # balances per table and region: source = loaded + rejected
    rejected = Counter()
    for table_name, region in schema_conn.execute("SELECT table_name, region FROM ops.migration_rejects"):
        rejected[(table_name, region)] += 1
    for t in MIGRATABLE:
        src = source_counts(path, t)
        tgt = target_counts(schema_conn, t)
        for region in set(src) | set(tgt):
            key = (t.name, region if region is not None else "UNKNOWN")
            assert src.get(region, 0) == tgt.get(region, 0) + rejected[key], key
    assert failures(validate(path, pg_dsn)) == []


# --- 5. re-run: identical content --------------------------------------------------------------------------
def test_rerun_gives_identical_content_without_duplicates(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, defects_sample: tuple[Path, dict]
) -> None:
    path, manifest = defects_sample
    load(path, pg_dsn, run_id="first")
    first, first_ops = fingerprints(schema_conn), ops_counts(schema_conn)
    load(path, pg_dsn, run_id="second")
    assert fingerprints(schema_conn) == first
    assert all(n > 0 for n, _ in first.values())
    for t in MIGRATABLE:
        assert duplicate_keys(schema_conn, t) == 0, t.name
    after = ops_counts(schema_conn)
    assert after["migration_rejects"] == first_ops["migration_rejects"] == sum(
        1 for e in manifest["planted"] if e["expect"] == "reject")
    assert after["migration_checksums"] == first_ops["migration_checksums"]
    assert failures(validate(path, pg_dsn)) == []


# --- 6. a load killed halfway leaves the previous content; a re-run gives parity --------------------------
_CHILD = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{plugins!r}]
    import quantdbops.migration.target_load as L
    import quantdbops.migration.producer as P
    from quantdbops.io.pg import connect, detect_mode
    from quantdbops.migration.source_plan import SliceFilter
    from quantdbops.migration.source import open_source
    from quantdbops.registry import OHLCV_DATA

    real_produce = P.produce

    def throttled(sconn, name, flt, rowid_range, dups, emit, chunk_bytes=None):
        # Small chunks, a pause after each: the COPY stays in flight long enough to be killed halfway.
        def slow(data):
            emit(data)
            time.sleep(0.05)
        return real_produce(sconn, name, flt, rowid_range, dups, slow, chunk_bytes=32 * 1024)

    P.produce = throttled  # read_source, the in-process path, calls it
    sconn = open_source({source!r})
    pg = connect({dsn!r}, application_name="killed-load")
    mode = detect_mode(pg)
    pg.commit()
    L.load_table(sconn, pg, OHLCV_DATA, SliceFilter(), run_id="killed", mode=mode, workers=1,
                 progress=lambda m: print(m, flush=True), progress_seconds=0.0)
    print("FINISHED", flush=True)
""")


def test_killed_load_changes_nothing_and_a_rerun_gives_parity(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "spock_local.db"
    generate(path, tickers_per_region=10, days=200, seed=5)
    load(path, pg_dsn, run_id="first")
    before = fingerprint(schema_conn, "ohlcv_data")
    indexes_before = sorted(r[0] for r in schema_conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'ohlcv_data'"))
    checksums_before = schema_conn.execute(
        "SELECT count(*), sum(checksum) FROM ops.migration_checksums WHERE table_name = 'ohlcv_data'").fetchone()
    total = sum(source_counts(path, OHLCV_DATA).values())
    assert before[0] == total

    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(plugins=str(REPO / "plugins"), source=str(path), dsn=pg_dsn)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    copying_at_kill = None
    output: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            output.append(line)
            if "rows loaded" in line:
                done = int(line.split(": ", 1)[1].split("/", 1)[0].replace(",", ""))
                if done >= total // 3:
                    copying_at_kill = schema_conn.execute(
                        "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name = 'killed-load' AND state = 'active'").fetchone()
                    os.kill(child.pid, signal.SIGKILL)
                    break
            assert "FINISHED" not in line, "the load finished before it could be killed"
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "".join(output[-20:])
    assert copying_at_kill is not None and copying_at_kill[1].startswith("COPY")
    # PostgreSQL notices the dead client and rolls the load's transaction back.
    deadline = time.monotonic() + 30
    while schema_conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                              (copying_at_kill[0],)).fetchone()[0]:
        assert time.monotonic() < deadline, "the killed load's backend did not end"
        time.sleep(0.1)

    assert fingerprint(schema_conn, "ohlcv_data") == before
    assert sorted(r[0] for r in schema_conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'ohlcv_data'")) \
        == indexes_before
    assert schema_conn.execute(
        "SELECT count(*), sum(checksum) FROM ops.migration_checksums WHERE table_name = 'ohlcv_data'"
    ).fetchone() == checksums_before
    assert schema_conn.execute("SELECT count(*) FROM ops.migration_runs WHERE run_id = 'killed'").fetchone()[0] == 0

    load(path, pg_dsn, ["ohlcv_data"], run_id="rerun")
    assert fingerprint(schema_conn, "ohlcv_data") == before
    assert target_counts(schema_conn, OHLCV_DATA) == source_counts(path, OHLCV_DATA)
    assert failures(validate(path, pg_dsn)) == []


# --- 8. a planted fault is caught down to the row and column ---------------------------------------------
def test_a_changed_value_fails_the_content_checksum_down_to_the_row(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, clean_sample: tuple[Path, dict]
) -> None:
    path, _ = clean_sample
    load(path, pg_dsn)
    assert failures(validate(path, pg_dsn)) == []
    ticker, region, day, timeframe, old, new = schema_conn.execute(
        "SELECT ticker, region, date, timeframe, close, low FROM ohlcv_data WHERE close <> low "
        "ORDER BY ticker, region, date LIMIT 1 OFFSET 17").fetchone()
    schema_conn.execute(
        "UPDATE ohlcv_data SET close = low WHERE ticker = %s AND region = %s AND date = %s AND timeframe = %s",
        (ticker, region, day, timeframe))

    results = validate(path, pg_dsn)
    content = {r.table: r for r in results if r.check == "content_checksum"}
    assert {n for n, r in content.items() if r.status == "fail"} == {"ohlcv_data"}
    details = content["ohlcv_data"].details
    assert [(m["region"], m["bucket"][:7]) for m in details["months"]] == [(region, day.isoformat()[:7])]
    assert details["rows"] == [{
        "region": region, "day": day.isoformat(),
        "key": {"ticker": ticker, "region": region, "date": day.isoformat(), "timeframe": timeframe},
        "problem": "values differ",
        "columns": {"close": {"source": str(old), "target": str(new)}},
    }]


# Text that looks like COPY syntax: the load's delimiter and NULL marker, escapes, the default marker.
TRICKY_TEXTS = ["Samsung Electronics Co., Ltd.", "null", "NULL", "\\N", "a\\,b", "tab\there", "two\nlines\r",
                "c:\\dir\\", ",", "nul\\l", ""]


def test_text_that_looks_like_copy_syntax_arrives_exactly_and_balances(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, clean_sample: tuple[Path, dict], tmp_path: Path
) -> None:
    """Tickers' names (and English names) holding the delimiter, the NULL marker and escapes arrive as they are stored,
    the content checksums balance, and a changed one is drilled down to its column."""
    import shutil

    path = tmp_path / "tricky.db"
    shutil.copy(clean_sample[0], path)
    with sqlite3.connect(path) as s:
        rowids = [r[0] for r in s.execute("SELECT rowid FROM tickers ORDER BY rowid LIMIT ?", (len(TRICKY_TEXTS),))]
        for rowid, text in zip(rowids, TRICKY_TEXTS, strict=True):
            s.execute("UPDATE tickers SET name = ?, name_eng = ? WHERE rowid = ?", (text, text[::-1], rowid))
        stored = dict(s.execute(f"SELECT ticker, name FROM tickers WHERE rowid IN ({','.join('?' * len(rowids))})",
                                rowids).fetchall())
    load(path, pg_dsn, ["tickers"])
    assert failures(validate(path, pg_dsn, ["tickers"])) == []
    got = dict(schema_conn.execute("SELECT ticker, name FROM tickers WHERE ticker = ANY(%s)", (list(stored),)))
    assert got == stored
    got_english = dict(schema_conn.execute("SELECT name, name_eng FROM tickers WHERE ticker = ANY(%s)",
                                           (list(stored),)))
    assert got_english == {text: text[::-1] for text in TRICKY_TEXTS}

    ticker = next(t for t, name in stored.items() if name == "Samsung Electronics Co., Ltd.")
    schema_conn.execute("UPDATE tickers SET name = 'Samsung, changed' WHERE ticker = %s", (ticker,))
    content = {r.table: r for r in validate(path, pg_dsn, ["tickers"]) if r.check == "content_checksum"}
    rows = content["tickers"].details["rows"]
    assert [(r["problem"], r["columns"]) for r in rows] == [
        ("values differ", {"name": {"source": "Samsung Electronics Co.\\, Ltd.", "target": "Samsung\\, changed"}})]


def test_checksums_of_an_earlier_row_format_are_named_not_compared(
    mode: str, pg_dsn: str, schema_conn: psycopg.Connection, clean_sample: tuple[Path, dict]
) -> None:
    """Source sums written by an earlier version (another rendering) fail as such, with the task to clear;
    the reload writes them in today's format and validation passes."""
    from quantdbops.migration import checksum, verdict

    path, _ = clean_sample
    load(path, pg_dsn, ["tickers"])
    assert {f for (f,) in schema_conn.execute(
        "SELECT DISTINCT row_format FROM ops.migration_checksums WHERE table_name = 'tickers'")} == {
        checksum.ROW_FORMAT}
    schema_conn.execute("UPDATE ops.migration_checksums SET row_format = NULL WHERE table_name = 'tickers'")
    failed = [r for r in validate(path, pg_dsn, ["tickers"]) if r.status == "fail"]
    assert [(r.check, r.table, r.actual) for r in failed] == [
        ("checksum_format", "tickers", "written by an earlier version: unrecorded (before row_format)")]
    assert "clear load_tickers and validate" in verdict.what_to_do(failed, "run")
    load(path, pg_dsn, ["tickers"])
    assert failures(validate(path, pg_dsn, ["tickers"])) == []

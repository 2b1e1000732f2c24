"""Hostile input the sample generator never writes: cells PostgreSQL cannot hold, a UTF-16 file, paths with
characters that mean something in a URI. No cell may abort a table, every poisoned row is quarantined with
its reason and its raw row kept losslessly, and the source file is only ever read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import psycopg
import pytest

from quantdbops.migration.source import inspect_source, open_source, require_complete
from quantdbops.registry import OHLCV_DATA, TICKERS, table
from quantdbops.schema.apply import apply_schema
from sample import generate
from support.harness import MODES
from support.migration import CLEAN_SAMPLE, failures, fingerprints, load, source_counts, target_counts, validate

# (table, how the row is poisoned (SQL assignment), the reject's reason, its detail, the raw value kept)
POISON = [
    ("ohlcv_data", "ma20 = 9e999", "non_numeric", "ma20", {"real": "inf"}),
    ("ohlcv_data", "ma5 = -9e999", "non_numeric", "ma5", {"real": "-inf"}),
    ("ohlcv_data", "volume = 1e20", "non_numeric", "volume", 1e20),
    # text that is no UTF-8 in a date and in a numeric column: the read switches to its safe query there
    ("ohlcv_data", "date = CAST(x'323032352d30312dff' AS TEXT)", "malformed_date", "date",
     {"text_hex": "323032352d30312dff", "note": "not valid text in the file's encoding"}),
    ("ohlcv_data", "rsi_14 = CAST(x'3531ff' AS TEXT)", "non_numeric", "rsi",
     {"text_hex": "3531ff", "note": "not valid text in the file's encoding"}),
    ("ohlcv_data", "created_at = CAST('2025-01-02T10:00:00' || char(0) AS TEXT)", "malformed_timestamp", "created_at",
     {"text_hex": "323032352d30312d30325431303a30303a303000", "note": "holds a NUL byte"}),
    ("technical_analysis", "stage = 9999999999", "non_numeric", "stage", 9999999999),
    ("technical_analysis", "gpt_analysis = 'line one' || char(0) || 'line two'", "invalid_text",
     "gpt_analysis: a NUL byte", {"text_hex": "6c696e65206f6e65006c696e652074776f", "note": "holds a NUL byte"}),
    ("technical_analysis", "gpt_pattern = CAST(x'c328' AS TEXT)", "invalid_text", "gpt_pattern: not valid UTF-8",
     {"text_hex": "c328", "note": "not valid text in the file's encoding"}),
    ("technical_analysis", "gpt_pattern = x'00ff10'", "invalid_text", "gpt_pattern: a blob", {"blob_hex": "00ff10"}),
]
# Rows of tickers of their own (nothing references them): a poisoned ticker makes no orphans.
POISON_TICKERS = [
    ("name = 'Samsung' || char(0)", "invalid_text", "name: a NUL byte",
     {"text_hex": "53616d73756e6700", "note": "holds a NUL byte"}),
    ("exchange = x'4b5258'", "invalid_text", "exchange: a blob", {"blob_hex": "4b5258"}),
    ("lot_size = 2147483648", "non_numeric", "lot_size", 2147483648),
    ("is_active = 7", "invalid_value", "is_active", 7),
]


def _poison(path: Path) -> list[tuple[str, int, str, str, object, str]]:
    """Poison rows of a copy in place; (table, rowid, reason, detail, raw value, source column) of each."""
    out = []
    with sqlite3.connect(path) as s:
        for i, (name, assignment, reason, detail, raw) in enumerate(POISON):
            t = table(name)
            rowid = s.execute(f"SELECT rowid FROM {t.source} ORDER BY rowid LIMIT 1 OFFSET {7 + 3 * i}").fetchone()[0]
            s.execute(f"UPDATE {t.source} SET {assignment} WHERE rowid = ?", (rowid,))
            out.append((name, rowid, reason, detail, raw, assignment.split(" = ")[0]))
        for i, (assignment, reason, detail, raw) in enumerate(POISON_TICKERS):
            s.execute("CREATE TEMP TABLE one AS SELECT * FROM tickers ORDER BY rowid LIMIT 1")
            s.execute(f"UPDATE temp.one SET ticker = 'ZZPOISON{i}', {assignment}")
            s.execute("INSERT INTO main.tickers SELECT * FROM temp.one")
            s.execute("DROP TABLE temp.one")
            rowid = s.execute("SELECT last_insert_rowid()").fetchone()[0]
            out.append(("tickers", rowid, reason, detail, raw, assignment.split(" = ")[0]))
    return out


def _stored(path: Path, name: str, rowid: int, column: str) -> bytes | None:
    """A cell's stored bytes (text as its bytes), read independently of the loader."""
    with sqlite3.connect(path) as s:
        row = s.execute(f"SELECT typeof({column}), CAST({column} AS BLOB) FROM {table(name).source} "
                        "WHERE rowid = ?", (rowid,)).fetchone()
    return row[1]


@pytest.mark.parametrize("mode", MODES)
def test_no_cell_aborts_a_table_and_every_raw_row_is_kept(
        mode: str, tmp_path: Path, pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    path = tmp_path / "poisoned.db"
    generate(path, **CLEAN_SAMPLE)
    poisoned = _poison(path)
    apply_schema(pg_conn)

    dry = load(path, pg_dsn, dry_run=True, run_id="dry")  # through PostgreSQL's input functions, rolled back
    results = load(path, pg_dsn, run_id="real")
    for name, r in results.items():
        assert r.source_rows == r.loaded + sum(r.rejected.values()), name
        assert dry[name].rejected == r.rejected, name
    got = {(t, rowid): (reason, detail, raw) for t, rowid, reason, detail, raw in pg_conn.execute(
        "SELECT table_name, source_rowid, reason, detail, raw_row FROM ops.migration_rejects")}
    assert set(got) == {(t, rowid) for t, rowid, *_ in poisoned}
    for name, rowid, reason, detail, raw, column in poisoned:
        got_reason, got_detail, raw_row = got[(name, rowid)]
        assert (got_reason, got_detail) == (reason, detail), (name, column)
        source_column = {"rsi": "rsi_14"}.get(column, column)
        assert raw_row[source_column] == raw, (name, column)
        if isinstance(raw, dict) and ("text_hex" in raw or "blob_hex" in raw):  # lossless: the very bytes
            assert bytes.fromhex(raw.get("text_hex") or raw["blob_hex"]) == _stored(path, name, rowid, source_column)
        assert json.loads(json.dumps(raw_row)) == raw_row
    assert failures(validate(path, pg_dsn)) == []


def _utf16_copy(src: Path, dst: Path) -> None:
    """The same database in a file whose text encoding is UTF-16le (set before any table exists; SQLite
    attaches no file of another encoding, so the rows go through Python)."""
    with sqlite3.connect(src) as s, sqlite3.connect(dst) as d:
        d.execute("PRAGMA encoding = 'UTF-16le'")
        for name, ddl in s.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                   "AND name NOT LIKE 'sqlite_%'").fetchall():
            d.execute(ddl)
            rows = s.execute(f'SELECT * FROM "{name}" ORDER BY rowid').fetchall()
            if rows:
                d.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(rows[0]))})', rows)
        d.commit()
        assert d.execute("PRAGMA encoding").fetchone()[0] == "UTF-16le"


@pytest.mark.parametrize("mode", MODES[:1])
def test_a_utf16_source_loads_the_same_content(
        mode: str, tmp_path: Path, cluster: object, pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    utf8 = tmp_path / "utf8.db"
    generate(utf8, **CLEAN_SAMPLE)
    with sqlite3.connect(utf8) as s:  # text beyond ASCII, which the two encodings spell differently
        s.execute("UPDATE tickers SET name = '삼성전자 ' || ticker WHERE region = 'KR'")
    utf16 = tmp_path / "utf16.db"
    _utf16_copy(utf8, utf16)
    apply_schema(pg_conn)
    load(utf8, pg_dsn, run_id="utf8")
    expected = fingerprints(pg_conn)
    results = load(utf16, pg_dsn, run_id="utf16")
    assert all(not r.rejected for r in results.values())
    assert fingerprints(pg_conn) == expected
    assert pg_conn.execute("SELECT count(*) FROM tickers WHERE name LIKE '삼성전자 %'").fetchone()[0] > 0
    assert failures(validate(utf16, pg_dsn)) == []


NAMES = [
    pytest.param("spock#1.db", id="hash"),
    pytest.param("spock?mode=rw.db", id="question-mark"),
    pytest.param("spock%231.db", id="percent"),
    pytest.param("spock local.db", id="space"),
    pytest.param("스팍 데이터.db", id="non-ascii"),
    pytest.param("a#b?c%20d é.db", id="all-of-them"),
]


def _listing(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("name", NAMES)
def test_any_path_is_a_path(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_dsn: str,
                            pg_conn: psycopg.Connection) -> None:
    """The file is opened read-only exactly as named, never created or written, through the param's path
    and through the connection's URI form alike."""
    original = tmp_path / "original.db"
    generate(original, **CLEAN_SAMPLE)
    directory = tmp_path / "data"
    directory.mkdir()
    path = directory / name
    shutil.copy(original, path)
    before = _listing(directory)

    from urllib.parse import quote

    from quantdbops.io.sqlite import sqlite_path

    monkeypatch.setenv("AIRFLOW_CONN_SPOCK_SQLITE", f"sqlite:///{quote(str(path))}")
    assert sqlite_path() == str(path)
    sconn = open_source(sqlite_path())
    report = inspect_source(sconn, str(path))
    require_complete(report)
    assert report.tables["tickers"] > 0
    sconn.close()
    apply_schema(pg_conn)
    load(path, pg_dsn, ["tickers", "ohlcv_data"])
    assert target_counts(pg_conn, OHLCV_DATA) == source_counts(original, OHLCV_DATA)
    assert sum(target_counts(pg_conn, TICKERS).values()) == report.tables["tickers"]
    assert _listing(directory) == before  # nothing created beside it, the file unchanged

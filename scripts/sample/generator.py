"""Write a deterministic sample of the Spock platform's SQLite database (the source contract's shape).

Everything comes from one `random.Random(seed)` consumed in a fixed order, and every timestamp is derived
from a date, so the same arguments give the same table contents. Defects are planted after the clean data
is complete, from the same generator: the clean part of a file is identical with or without them. A shape
(`shapes`) changes how values are spelled with draws of its own, never which rows there are.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from collections import Counter
from datetime import date
from pathlib import Path

from sample import activity, declared, extras, reference
from sample import defects as planting
from sample.ohlcv import write_ohlcv
from sample.reference import Row
from sample.shapes import INDICATOR_DECIMALS, SHAPES, Shape, full_precision_row, reshape
from sample.source_ddl import ALL_TABLES, CONTRACT_DDL, EXTRA_DDL
from sample.universe import REGIONS, build_universe, business_days

# The manifest's name for this generator, kept from when it lived in plugins/ as quantdbops.sample: a manifest
# written now equals one written before the move.
GENERATOR = "quantdbops.sample"
MANIFEST_VERSION = 1
MIN_DAYS = 30
# Tables whose own region column the manifest counts by (NULL regions under "null").
REGION_TABLES: tuple[str, ...] = ("ohlcv_data", "tickers", "stock_details", "etfs", "trades")


def manifest_path(path: str | Path) -> Path:
    """Where a sample's manifest is kept by default: ``<file>.manifest.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".manifest.json")


def write_manifest(manifest: dict, path: str | Path, where: str | Path | None = None) -> Path:
    """Write ``manifest`` as JSON to ``where`` (default: beside the sample at ``path``); return that path."""
    out = Path(where) if where is not None else manifest_path(path)
    out.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def read_manifest(path: str | Path) -> dict | None:
    """The manifest beside the sample at ``path``; None when the file or its manifest is missing or unreadable."""
    try:
        return json.loads(manifest_path(path).read_text(encoding="utf-8")) if Path(path).exists() else None
    except (OSError, ValueError):
        return None


def generate(path: str | Path, *, tickers_per_region: int = 20, days: int = 260, seed: int = 42,
             end_date: date = date(2025, 10, 17), defects: bool = False, shape: str = Shape.SAMPLE) -> dict:
    """Write the SQLite file (overwriting) and return the manifest dict (also what the CLI writes as JSON).

    The file is built under `<path>.partial` and renamed into place only when complete. `shape`: one of
    `shapes.SHAPES`, how the values are spelled.
    Raises ValueError for sizes the sample cannot honour (see `defects.check_plantable`) or an unknown shape.
    """
    if days < MIN_DAYS:
        raise ValueError(f"days must be at least {MIN_DAYS}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    if defects:
        planting.check_plantable(tickers_per_region, days)
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    conn = sqlite3.connect(partial, isolation_level=None)
    try:
        # A sample is rebuilt rather than recovered, so durability buys nothing here.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        for table in ALL_TABLES:
            conn.execute(CONTRACT_DDL.get(table) or EXTRA_DDL[table])
        calendar = business_days(end_date, days)
        planted = _fill(conn, random.Random(seed), tickers_per_region, calendar, defects,
                        random.Random(f"{seed}:{shape}") if shape == Shape.FULL_PRECISION else None,
                        INDICATOR_DECIMALS.get(Shape(shape)))
        reshape(conn, Shape(shape), seed)
        conn.execute("COMMIT")
        manifest = {
            "generator": GENERATOR, "version": MANIFEST_VERSION, "seed": seed, "shape": str(shape),
            "tickers_per_region": tickers_per_region, "days": days, "end_date": end_date.isoformat(),
            "first_date": calendar[0].isoformat(), "last_date": calendar[-1].isoformat(),
            "defects": defects, "row_counts": _row_counts(conn), "row_counts_by_region": _region_counts(conn),
            "planted_counts": dict(Counter(str(entry["kind"]) for entry in planted)), "planted": planted,
            # Every declared rule with the rows planted for it, or why no row breaks it on its own.
            "rules": declared.coverage(planted) if defects else [],
        }
    except BaseException:
        conn.close()
        partial.unlink(missing_ok=True)
        raise
    conn.close()
    os.replace(partial, target)
    return manifest


def _fill(conn: sqlite3.Connection, rng: random.Random, tickers_per_region: int, calendar: list[date],
          plant: bool, adjust: random.Random | None = None, indicator_decimals: int | None = None) -> list[dict]:
    """Every table's rows, in a fixed order of random draws; then the defects if asked. ``adjust``: the
    full-precision shape's draws (then every REAL is written as computed); ``indicator_decimals``: the OHLCV
    indicators filled and rounded to that many places (iso-micro)."""
    def insert(table: str, rows: list[Row]) -> None:
        _insert(conn, table, rows, full_precision=adjust is not None)

    universe = build_universe(rng, tickers_per_region)
    market = write_ohlcv(conn, rng, universe, calendar, adjust, indicator_decimals)
    insert("tickers", reference.ticker_rows(rng, market))
    insert("stock_details", reference.stock_detail_rows(rng, market))
    etfs, etf_details, holdings = reference.etf_rows(rng, market)
    insert("etfs", etfs)
    insert("etf_details", etf_details)
    insert("etf_holdings", holdings)
    insert("technical_analysis", activity.technical_rows(rng, market))
    trades, portfolio = activity.trade_rows(rng, market)
    insert("trades", trades)
    insert("portfolio", portfolio)
    fx = activity.fx_series(rng, len(market.days))
    insert("exchange_rate_history", activity.fx_rows(rng, market, fx))
    insert("market_sentiment", activity.sentiment_rows(rng, market, fx))
    insert("global_market_indices", activity.index_rows(rng, market))
    insert("ticker_fundamentals", reference.fundamental_rows(rng, market))
    for table, rows in extras.extra_rows(rng, market, fx).items():
        insert(table, rows)
    return planting.plant(conn, rng, market) if plant else []


def _insert(conn: sqlite3.Connection, table: str, rows: list[Row], full_precision: bool = False) -> None:
    if not rows:
        return
    columns = list(rows[0])
    info = conn.execute(f"PRAGMA table_info({table})").fetchall()
    declared = {name for _, name, _, _, _, pk in info if not (name == "id" and pk)}
    if full_precision:
        reals = {name for _, name, kind, _, _, _ in info if kind == "REAL"}
        rows = [full_precision_row(row, reals) for row in rows]
    # Every column explicit: a DEFAULT such as CURRENT_TIMESTAMP would tie the file to the clock.
    if set(columns) != declared:
        mismatch = sorted(declared ^ set(columns))
        raise AssertionError(f"{table}: rows do not cover the declared columns: {mismatch}")
    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                     ([row[c] for c in columns] for row in rows))


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in ALL_TABLES}


def _region_counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    order = {spec.code: i for i, spec in enumerate(REGIONS)}
    counts: dict[str, dict[str, int]] = {}
    for table in REGION_TABLES:
        rows = conn.execute(f"SELECT region, COUNT(*) FROM {table} GROUP BY region").fetchall()
        rows.sort(key=lambda rc: (rc[0] is None, order.get(rc[0], len(order)), rc[0] or ""))
        counts[table] = {"null" if region is None else region: n for region, n in rows}
    return counts

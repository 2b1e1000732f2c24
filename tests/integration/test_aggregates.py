"""The OHLCV aggregates against what the daily bars say, in both modes.

In TimescaleDB quarterly and yearly are built on the monthly continuous aggregate (so a refresh reads the
months, not every bar again; in plain mode they read the bars): each must hold exactly what grouping the bars
themselves gives, computed here straight from ``ohlcv_data`` (the first bar's open and ma5, the last bar's
close, ma20 and rsi, NULLs included; extremes, sums, counts), on bars our sample never has: a ticker listed in
two regions, 17-digit prices, volumes near the bigint limit, NULL indicators on the first and last days of
periods, weekly bars on the same days, a month missing in the middle of a quarter, a quarter with one bar.
Then the days that follow change history (a bar added, one corrected, one deleted, a missing month
back-filled) and a second refresh must follow every change (in TimescaleDB through the monthly level).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from quantdbops.io.pg import detect_mode
from quantdbops.migration.aggregates import refresh_after_load
from quantdbops.registry import AGGREGATES, table
from quantdbops.schema.partitions import ensure_partitions
from support.harness import MODES

FIRST, LAST = date(2023, 11, 1), date(2025, 2, 14)
LISTINGS = [("AAA", "KR"), ("AAA", "US"), ("BRK.B", "US"), ("7203", "JP")]
BIG_VOLUME = 9_000_000_000_000_000  # a month's sum of these exceeds bigint: the aggregates sum in numeric

# What each aggregate must equal, grouped straight from the bars (the period's first and last by date).
_FROM_BARS = """
SELECT ticker, region, date_trunc(%(unit)s, date)::date,
       (array_agg(open ORDER BY date))[1], max(high), min(low), (array_agg(close ORDER BY date DESC))[1],
       sum(volume), {extra} count(*)
FROM public.ohlcv_data WHERE timeframe = 'D' GROUP BY 1, 2, 3
"""
_INDICATORS = ("(array_agg(ma5 ORDER BY date))[1], (array_agg(ma20 ORDER BY date DESC))[1], "
               "(array_agg(rsi ORDER BY date DESC))[1],")
VIEWS = {  # view: (its period column, date_trunc unit, whether it carries the indicator columns)
    "ohlcv_monthly": ("month", "month", True),
    "ohlcv_quarterly": ("quarter", "quarter", True),
    "ohlcv_yearly": ("year", "year", False),
}


def _bars() -> list[tuple]:
    """Daily bars of every weekday in [FIRST, LAST] per listing, with the shapes the module docstring names,
    and a weekly bar on every Monday whose values would change every first and last if it were counted."""
    rows = []
    for n, (ticker, region) in enumerate(LISTINGS):
        day, i = FIRST, 0
        while day <= LAST:
            skip = (day.weekday() >= 5
                    or (ticker == "BRK.B" and day.year == 2024 and day.month == 2)  # a month missing mid-quarter
                    or (ticker == "7203" and date(2024, 7, 1) <= day < date(2024, 9, 30)))  # Q3 2024: one bar
            if not skip:
                open_ = Decimal("100.12345678901234") + Decimal("0.0137") * i + n
                close = open_ + (Decimal("0.50000000000001") if i % 3 else Decimal("-0.49999999999999"))
                high, low = max(open_, close) + Decimal("0.25"), min(open_, close) - Decimal("0.25")
                ma5 = None if day.day <= 3 else open_ - 1
                ma20 = None if day.day >= 27 else close - 2
                rsi = None if i % 7 == 0 else Decimal(i % 100) + Decimal("0.123456789")
                created = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9)
                rows.append((ticker, region, day, "D", open_, high, low, close, BIG_VOLUME + i, ma5, ma20, rsi,
                             created))
                if day.weekday() == 0:
                    rows.append((ticker, region, day, "W", open_ * 2, high * 3, low / 2, close * 2, 1, 1, 1, 1,
                                 created))
                i += 1
            day += timedelta(days=1)
    return rows


def _insert(conn: psycopg.Connection, rows: list[tuple]) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO public.ohlcv_data (ticker, region, date, timeframe, open, high, low, close, "
                        "volume, ma5, ma20, rsi, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                        "%s, %s)", rows)


def _mismatches(conn: psycopg.Connection, view: str) -> tuple[int, int, list[tuple]]:
    """(rows the view holds, rows the bars give, up to 5 rows in one and not the other)."""
    period, unit, indicators = VIEWS[view]
    cols = (f"ticker, region, {period}, open, high, low, close, volume, "
            + ("ma5_start, ma20_end, rsi_end, " if indicators else "") + "trading_days")
    want = _FROM_BARS.format(extra=_INDICATORS if indicators else "")
    diff = conn.execute(
        f"(SELECT {cols} FROM public.{view} EXCEPT ALL {want}) UNION ALL ({want} EXCEPT ALL "
        f"SELECT {cols} FROM public.{view}) LIMIT 5", {"unit": unit}).fetchall()
    held = conn.execute(f"SELECT count(*) FROM public.{view}").fetchone()[0]
    expected = conn.execute(f"SELECT count(*) FROM ({want}) w", {"unit": unit}).fetchone()[0]
    return held, expected, diff


def _refresh_and_compare(conn: psycopg.Connection, mode: str) -> None:
    lines: list[str] = []
    refreshed = refresh_after_load(conn, detect_mode(conn), ["ohlcv_data"], lambda msg, *a: lines.append(msg % a))
    assert [r.view for r in refreshed] == [v for v, src in AGGREGATES.items() if src == "ohlcv_data"], lines
    for view in VIEWS:
        held, expected, diff = _mismatches(conn, view)
        assert diff == [] and held == expected > 0, (mode, view, held, expected, diff)


@pytest.mark.parametrize("mode", MODES)
def test_monthly_quarterly_and_yearly_equal_the_bars_through_later_changes(
        mode: str, schema_conn: psycopg.Connection) -> None:
    if mode == "postgresql":
        ensure_partitions(schema_conn, table("ohlcv_data"), FIRST, LAST + timedelta(days=40))
    _insert(schema_conn, _bars())
    _refresh_and_compare(schema_conn, mode)
    # the planted NULL indicators are some quarters' first ma5 and last ma20, so the comparison covers them
    nulls = schema_conn.execute("SELECT count(*) FILTER (WHERE ma5_start IS NULL), count(*) FILTER "
                                "(WHERE ma20_end IS NULL) FROM public.ohlcv_quarterly").fetchone()
    assert min(nulls) > 0, nulls

    # The days that follow: a new bar in the newest quarter, the last bar of 2024 corrected, the first bar of
    # Q2 2024 deleted (its quarter's open moves to the next bar), the missing February back-filled by a bar.
    _insert(schema_conn, [("AAA", "KR", date(2025, 2, 17), "D", Decimal("1.5"), Decimal("99999.00000000000001"),
                           Decimal("0.00000000000001"), Decimal("2.5"), 0, None, None, None,
                           datetime(2025, 2, 17, 9, tzinfo=UTC)),
                          ("BRK.B", "US", date(2024, 2, 14), "D", Decimal("3"), Decimal("4"), Decimal("2"),
                           Decimal("3.33333333333333333"), 5, Decimal("7"), Decimal("8"), Decimal("9"),
                           datetime(2024, 2, 14, 9, tzinfo=UTC))])
    changed = schema_conn.execute(
        "UPDATE public.ohlcv_data SET close = low, ma20 = 42.000000000000001, rsi = NULL WHERE timeframe = 'D' "
        "AND (ticker, region) = ('AAA', 'US') AND date = (SELECT max(date) FROM public.ohlcv_data "
        "WHERE date < '2025-01-01' AND ticker = 'AAA' AND region = 'US')").rowcount
    gone = schema_conn.execute(
        "DELETE FROM public.ohlcv_data WHERE timeframe = 'D' AND (ticker, region) = ('7203', 'JP') "
        "AND date = (SELECT min(date) FROM public.ohlcv_data WHERE date >= '2024-04-01' AND ticker = '7203')"
    ).rowcount
    assert (changed, gone) == (1, 1)
    _refresh_and_compare(schema_conn, mode)

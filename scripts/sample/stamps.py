"""Timestamps in the two spellings the real file holds, always derived from a date (never the clock)."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta


def iso_stamp(rng: random.Random, day: date, hour: int, spread_minutes: int = 60) -> str:
    """What Python's isoformat() wrote: '2025-10-17T18:04:09.123456', or without the fraction when the
    microseconds happen to be zero (about one stamp in eight here, as in the real file's mix)."""
    micro = 0 if rng.random() < 0.125 else rng.randrange(1, 1_000_000)
    moment = datetime.combine(day, time(hour)) + timedelta(seconds=rng.randrange(spread_minutes * 60),
                                                           microseconds=micro)
    return moment.isoformat()


def sql_stamp(rng: random.Random, day: date, hour: int, spread_minutes: int = 60) -> str:
    """What SQLite's CURRENT_TIMESTAMP (or the trading code) wrote: 'YYYY-MM-DD HH:MM:SS'."""
    moment = datetime.combine(day, time(hour)) + timedelta(seconds=rng.randrange(spread_minutes * 60))
    return moment.strftime("%Y-%m-%d %H:%M:%S")

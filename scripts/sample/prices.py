"""Daily bars and their indicator columns for one ticker.

The data-quality checks flag a daily return or a volume more than 3 standard deviations from the mean of
its ticker (the whole history, or a rolling window). A clean sample must raise no such flag, so the daily
log-return shocks are bounded (uniform with the ticker's volatility, i.e. within +-1.74 sigma, inside the
+-2 sigma bound) and volumes are a bounded multiple of the ticker's base volume. Bounded draws still
cluster now and then, so every drawn series is checked with `series_calm` and redrawn until it passes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise

from sample.universe import REGION_BY_CODE

# Below the checks' 3.0 so the small differences between return definitions (simple vs log, sample vs
# population standard deviation) cannot push a clean value over.
Z_LIMIT = 2.9
CALM_WINDOWS: tuple[int, ...] = (20, 60)
_SQRT3 = math.sqrt(3.0)
_MAX_DRAWS = 200


@dataclass(frozen=True)
class Bars:
    """One ticker's daily bars, oldest first; prices already rounded to the ticker's tick."""

    opens: list[float]
    highs: list[float]
    lows: list[float]
    closes: list[float]
    volumes: list[int]
    decimals: int


def price_decimals(region: str, price: float) -> int:
    """Decimal places prices of this level carry in `region` (negative: tens or hundreds), so that one
    tick is at most about 0.1-0.2% of the price, like the real markets' tick tables."""
    if region == "KR":
        return 0 if price < 10_000 else -1 if price < 100_000 else -2
    if region == "VN":
        return -1 if price < 50_000 else -2
    if region == "JP":
        return 0 if price >= 1_000 else 1
    if region == "HK":
        return 3 if price < 10 else 2 if price < 100 else 1
    return 2 if price >= 1 else 4


def round_price(value: float, decimals: int) -> float:
    """`value` on the tick grid, never below one tick."""
    return max(round(value, decimals), 10.0 ** -decimals)


def full_digits(value: float, up: bool = True) -> float:
    """`value`, or the nearest double above (below, `up=False`) it, whose shortest decimal spelling takes 15 to
    17 significant digits: what an unrounded computed value looks like. About one double in a hundred reads
    back from 14 digits or fewer; the step to its neighbour (one unit in the last place) changes nothing else."""
    while value != 0.0 and float(f"{value:.14g}") == value:
        value = math.nextafter(value, math.inf if up else -math.inf)
    return value


def full_bar(open_: float, high: float, low: float, close: float) -> tuple[float, float, float, float]:
    """A bar's prices at full precision, still bounded: low <= open, close <= high (high only moves up, low
    down)."""
    open_, close = full_digits(open_), full_digits(close)
    return (open_, full_digits(max(high, open_, close)), full_digits(min(low, open_, close), up=False), close)


def is_calm(values: Sequence[float], windows: Sequence[int] = CALM_WINDOWS, limit: float = Z_LIMIT) -> bool:
    """True when no value lies more than `limit` population standard deviations from the mean of the
    whole series, of any `windows`-long run containing it, or of the run just before it.

    Population deviation is the smaller one, so this also bounds sample-deviation z-scores.
    """
    n = len(values)
    if n < 3:
        return True
    hi, lo = max(values), min(values)
    lim2 = limit * limit
    sums = list(accumulate(values, initial=0.0))
    squares = list(accumulate((v * v for v in values), initial=0.0))
    mean = sums[n] / n
    var = squares[n] / n - mean * mean
    if max(hi - mean, mean - lo) ** 2 > lim2 * var:
        return False
    for w in windows:
        if n < w:
            continue
        # w * sum of squares - sum**2 = w**2 * population variance of the run; a run whose variance clears
        # the bound set by the series' extremes is calm whatever its values, only the rest are examined.
        run_sums = [b - a for a, b in zip(sums, sums[w:], strict=False)]
        run_vars = [w * (b - a) - s * s for a, b, s in zip(squares, squares[w:], run_sums, strict=False)]
        worst = max(hi - min(run_sums) / w, max(run_sums) / w - lo)
        floor = worst * worst * w * w / lim2
        for j in [j for j, v in enumerate(run_vars) if v < floor]:
            m = run_sums[j] / w
            run = values[j:j + w + 1]
            if max(max(run) - m, m - min(run)) ** 2 * w * w > lim2 * run_vars[j]:
                return False
    return True


def series_calm(closes: Sequence[float], volumes: Sequence[float]) -> bool:
    """No extreme daily return (simple or log) and no extreme volume, in the sense of `is_calm`."""
    simple = [b / a - 1.0 for a, b in pairwise(closes)]
    if not is_calm(simple):
        return False
    log = [math.log(b / a) for a, b in pairwise(closes)]
    return is_calm(log) and is_calm([float(v) for v in volumes])


def _build(rng: random.Random, shocks: list[float], factors: list[float], region: str, start: float,
           sigma: float, mu: float, base_volume: float) -> Bars:
    rand = rng.random
    exp = math.exp
    n = len(shocks)
    half = _SQRT3 * sigma  # shocks are uniform on +-1: returns get standard deviation sigma
    # Centring the shocks pins the walk's end to the drift line (a Brownian bridge): long series stay in a
    # sane price band, and shifting every return by one constant changes no z-score.
    centre = sum(shocks) / n
    levels = accumulate((mu + half * (s - centre) for s in shocks), initial=math.log(start))
    next(levels)
    raw = [exp(level) for level in levels]
    decimals = price_decimals(region, min(*raw, start))
    tick = 10.0 ** -decimals
    closes = [max(round(p, decimals), tick) for p in raw]
    gap, wick = 0.3 * sigma, 0.8 * sigma
    opens = [max(round(p * exp(gap * (2.0 * rand() - 1.0)), decimals), tick)
             for p in [round_price(start, decimals), *closes[:-1]]]
    # Rounding is monotonic and the tick grid holds open and close, so high/low stay outside them.
    highs = [round(max(o, c) * exp(wick * rand()), decimals) for o, c in zip(opens, closes, strict=True)]
    lows = [max(round(min(o, c) * exp(-wick * rand()), decimals), tick)
            for o, c in zip(opens, closes, strict=True)]
    volumes = [int(base_volume * f) for f in factors]
    return Bars(opens, highs, lows, closes, volumes, decimals)


def simulate(rng: random.Random, region: str, asset_type: str, n: int) -> Bars:
    """`n` calm daily bars of a new ticker of `region` (see the module docstring)."""
    spec = REGION_BY_CODE[region]
    lo, hi = spec.price_range
    start = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    sigma = rng.uniform(0.006, 0.015) if asset_type == "ETF" else rng.uniform(0.010, 0.028)
    mu = rng.uniform(-0.0004, 0.0007)
    v_lo, v_hi = spec.volume_range
    base_volume = math.exp(rng.uniform(math.log(v_lo), math.log(v_hi)))
    rand = rng.random
    for _ in range(_MAX_DRAWS):
        # Screening the raw draws first is cheap and rejects most clustered draws before bars are built.
        shocks = [2.0 * rand() - 1.0 for _ in range(n)]
        if not is_calm(shocks):
            continue
        factors = [0.6 + 0.8 * rand() for _ in range(n)]
        if not is_calm(factors):
            continue
        bars = _build(rng, shocks, factors, region, start, sigma, mu, base_volume)
        if series_calm(bars.closes, bars.volumes):
            return bars
    raise RuntimeError(f"no calm {region} series in {_MAX_DRAWS} draws")  # never seen; a bug if it is


def _sma(values: Sequence[float], w: int) -> list[float | None]:
    n = len(values)
    if n < w:
        return [None] * n
    sums = list(accumulate(values, initial=0.0))
    inv = 1.0 / w
    return [None] * (w - 1) + [(b - a) * inv for a, b in zip(sums, sums[w:], strict=False)]


def _ema(values: Sequence[float | None], span: int) -> list[float | None]:
    """EMA seeded with the simple mean of its first `span` values (TA-Lib style), None before that."""
    out: list[float | None] = [None] * len(values)
    first = next((i for i, v in enumerate(values) if v is not None), len(values))
    if len(values) - first < span:
        return out
    alpha = 2.0 / (span + 1)
    ema = sum(values[first:first + span]) / span
    out[first + span - 1] = ema
    for i in range(first + span, len(values)):
        ema += alpha * (values[i] - ema)
        out[i] = ema
    return out


def _wilder(values: Sequence[float], period: int, first: int) -> list[float | None]:
    """Wilder's smoothing of values[first:], seeded with their simple mean; None until it is full."""
    n = len(values)
    out: list[float | None] = [None] * n
    if n - first < period:
        return out
    avg = sum(values[first:first + period]) / period
    out[first + period - 1] = avg
    for i in range(first + period, n):
        avg = (avg * (period - 1) + values[i]) / period
        out[i] = avg
    return out


def indicator_columns(highs: Sequence[float], lows: Sequence[float], closes: Sequence[float],
                      volumes: Sequence[int]) -> list[list[float | None]]:
    """The sixteen indicator columns of ohlcv_data, in table order (ma5 ... volume_ratio), each with
    None where its window is not yet full."""
    n = len(closes)
    ma5, ma20, ma60, ma120, ma200 = (_sma(closes, w) for w in (5, 20, 60, 120, 200))

    gains = [0.0] + [max(b - a, 0.0) for a, b in pairwise(closes)]
    losses = [0.0] + [max(a - b, 0.0) for a, b in pairwise(closes)]
    avg_gain, avg_loss = _wilder(gains, 14, 1), _wilder(losses, 14, 1)
    rsi = [None if g is None else 100.0 if lo == 0 else 100.0 - 100.0 / (1.0 + g / lo)
           for g, lo in zip(avg_gain, avg_loss, strict=True)]

    ema12, ema26 = _ema(closes, 12), _ema(closes, 26)
    macd = [None if b is None else a - b for a, b in zip(ema12, ema26, strict=True)]
    signal = _ema(macd, 9)
    hist = [None if s is None else m - s for m, s in zip(macd, signal, strict=True)]

    squares = list(accumulate((c * c for c in closes), initial=0.0))
    sums = list(accumulate(closes, initial=0.0))
    bb_upper: list[float | None] = [None] * n
    bb_lower: list[float | None] = [None] * n
    for i in range(19, n):
        s, q = sums[i + 1] - sums[i - 19], squares[i + 1] - squares[i - 19]
        sd = math.sqrt(max(q - s * s / 20.0, 0.0) / 19.0)  # sample deviation, as pandas' rolling std
        bb_upper[i], bb_lower[i] = ma20[i] + 2.0 * sd, ma20[i] - 2.0 * sd

    true_range = [highs[0] - lows[0]] + [max(h - lo, abs(h - pc), abs(lo - pc))
                                         for h, lo, pc in zip(highs[1:], lows[1:], closes, strict=False)]
    atr_14 = _wilder(true_range, 14, 0)
    atr = _sma(true_range, 14)  # the legacy column: a plain 14-day mean of the true range

    volume_ma20 = _sma(volumes, 20)
    volume_ratio = [None if m is None else v / m for v, m in zip(volumes, volume_ma20, strict=True)]
    return [ma5, ma20, ma60, ma120, ma200, rsi, macd, signal, hist, bb_upper, ma20, bb_lower,
            atr_14, atr, volume_ma20, volume_ratio]

"""Rows of the trading and market tables: technical_analysis, trades, portfolio, market_sentiment,
exchange_rate_history and global_market_indices. Builders return dicts keyed by column name."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

from sample.ohlcv import Market
from sample.reference import Row
from sample.stamps import iso_stamp, sql_stamp
from sample.universe import SECTORS

_PATTERNS = ("VCP", "Cup and Handle", "Flat Base", "Double Bottom", "Ascending Triangle")
# (currency, KRW per unit around October 2025, daily volatility)
FX: tuple[tuple[str, float, float], ...] = (
    ("USD", 1390.0, 0.004), ("JPY", 9.3, 0.005), ("CNY", 195.0, 0.003), ("HKD", 178.0, 0.004),
    ("VND", 0.0528, 0.003),
)
# (symbol, name, region, level around October 2025, daily volatility, typical volume)
INDICES: tuple[tuple[str, str, str, float, float, int], ...] = (
    ("^GSPC", "S&P 500", "US", 6600.0, 0.008, 4_500_000_000),
    ("^IXIC", "NASDAQ Composite", "US", 22500.0, 0.010, 7_000_000_000),
    ("^DJI", "Dow Jones Industrial Average", "US", 46000.0, 0.007, 450_000_000),
    ("^HSI", "Hang Seng Index", "ASIA", 25500.0, 0.011, 3_000_000_000),
    ("^N225", "Nikkei 225", "ASIA", 47500.0, 0.010, 1_800_000_000),
)


def walk(rng: random.Random, start: float, sigma: float, n: int) -> list[float]:
    """A multiplicative random walk of `n` points ending at `start` (the levels above are today's)."""
    values = [start]
    for _ in range(n - 1):
        values.append(values[-1] * math.exp(sigma * (2.0 * rng.random() - 1.0) * 1.7))
    # Reversed, so the most recent value is the known level.
    return values[::-1]


def technical_rows(rng: random.Random, market: Market) -> list[Row]:
    """`technical_analysis`: one analysis per ticker every 5 trading days (staggered across tickers)."""
    rows: list[Row] = []
    days = market.days
    for i, t in enumerate(market.tickers):
        for k in range(i % 5, len(days), 5):
            stage = rng.choices((1, 2, 3, 4), weights=(25, 35, 20, 20))[0]
            macro, structural, micro = rng.uniform(0, 25), rng.uniform(0, 45), rng.uniform(0, 30)
            total = macro + structural + micro
            signal = "BUY" if total >= 70 else "WATCH" if total >= 50 else "AVOID"
            gpt = signal == "BUY" and rng.random() < 0.4
            pattern = rng.choice(_PATTERNS) if gpt else None
            rows.append({
                "ticker": t.code, "analysis_date": market.dates[k], "stage": stage,
                "stage_confidence": rng.uniform(0.5, 0.95), "layer1_macro_score": macro,
                "layer2_structural_score": structural, "layer3_micro_score": micro, "total_score": total,
                "signal": signal, "signal_strength": total / 100.0, "gpt_pattern": pattern,
                "gpt_confidence": rng.uniform(0.55, 0.95) if gpt else None,
                "gpt_analysis": f"{pattern} forming in stage {stage}; volume contracting." if gpt else None,
                "created_at": iso_stamp(rng, days[k], 20),
            })
    return rows


def _quantity(rng: random.Random, lot_size: int, region: str) -> int:
    lots = rng.randint(1, 20) if lot_size > 1 else rng.randint(5, 300 if region == "KR" else 150)
    return lots * lot_size


def trade_rows(rng: random.Random, market: Market) -> tuple[list[Row], list[Row]]:
    """`trades` (a few dozen fills, ids in order time) and `portfolio` (the positions still open)."""
    stocks = [t for t in market.tickers if t.asset_type == "STOCK"]
    positions = rng.sample(stocks, min(20, len(stocks)))
    n = len(market.days)
    fills: list[Row] = []
    portfolio: list[Row] = []
    for p, t in enumerate(positions):
        closes = market.closes[t.code]
        entry = rng.randrange(n // 3, n - 2)
        qty = _quantity(rng, t.lot_size, t.region)
        price = closes[entry]
        entry_ts = sql_stamp(rng, market.days[entry], 9, 300)
        sold = p >= 6 and rng.random() < 0.75  # the first six stay open: the portfolio is never empty
        exit_ = rng.randrange(entry + 1, n) if sold else None
        sector = SECTORS[t.sector][0] if t.sector is not None else None
        score = rng.uniform(60.0, 92.0)
        fills.append(_fill(rng, t.code, t.region, "BUY", qty, price, price, None, entry_ts, None,
                           "CLOSED" if sold else "OPEN", sector, f"Stage 2 breakout, score {score:.0f}"))
        if exit_ is not None:
            exit_ts = sql_stamp(rng, market.days[exit_], 9, 300)
            sell = closes[exit_]
            fills.append(_fill(rng, t.code, t.region, "SELL", qty, sell, price, sell, entry_ts, exit_ts,
                               "CLOSED", sector, "Profit target reached" if sell > price else "Stop loss"))
            continue
        current = closes[-1]
        portfolio.append({
            "ticker": t.code, "quantity": qty, "avg_price": price, "current_price": current,
            "market_value": current * qty, "unrealized_pnl": (current - price) * qty,
            "unrealized_pnl_pct": (current / price - 1.0) * 100.0, "stop_loss_price": price * 0.92,
            "profit_target_price": price * 1.25, "entry_date": market.dates[entry], "entry_score": score,
            "last_updated": iso_stamp(rng, market.days[-1], 16),
        })
    fills.sort(key=lambda f: f["order_time"])
    return fills, portfolio


def _fill(rng: random.Random, code: str, region: str, side: str, qty: int, price: float, entry_price: float,
          exit_price: float | None, entry_ts: str, exit_ts: str | None, status: str, sector: str | None,
          reason: str) -> Row:
    order_time = exit_ts if side == "SELL" else entry_ts
    amount = price * qty
    executed = date.fromisoformat(order_time[:10])
    return {
        "ticker": code, "region": region, "side": side, "order_type": rng.choice(("LIMIT", "MARKET")),
        "quantity": qty, "entry_price": entry_price, "exit_price": exit_price, "price": price,
        "amount": amount, "fee": amount * 0.00015,
        "tax": amount * 0.0018 if side == "SELL" and region == "KR" else 0.0,
        "order_no": str(rng.randrange(10**9, 10**10)), "execution_no": str(rng.randrange(10**9, 10**10)),
        "entry_timestamp": entry_ts, "exit_timestamp": exit_ts, "order_time": order_time,
        # Filled within a few seconds of the order, on the same day.
        "execution_time": order_time[:17] + f"{min(59, int(order_time[17:]) + rng.randrange(1, 5)):02d}",
        "trade_status": status, "sector": sector, "position_size_percent": rng.uniform(2.0, 12.0),
        "reason": reason, "created_at": iso_stamp(rng, executed, 16),
    }


def fx_series(rng: random.Random, n: int) -> dict[str, list[float]]:
    """KRW per unit of each currency, one value per trading day."""
    return {ccy: walk(rng, level, sigma, n) for ccy, level, sigma in FX}


def fx_rows(rng: random.Random, market: Market, fx: dict[str, list[float]]) -> list[Row]:
    """`exchange_rate_history`: USD, JPY, CNY, HKD and VND per trading day, rates in KRW."""
    rows: list[Row] = []
    for k, day in enumerate(market.days):
        for ccy, _, _ in FX:
            rows.append({
                "currency": ccy, "rate": fx[ccy][k], "timestamp": iso_stamp(rng, day, 11),
                "rate_date": market.dates[k], "source": "BOK_API", "created_at": sql_stamp(rng, day, 12),
            })
    return rows


def sentiment_rows(rng: random.Random, market: Market, fx: dict[str, list[float]]) -> list[Row]:
    """`market_sentiment`: one row per trading day."""
    n = len(market.days)
    kospi, kosdaq = walk(rng, 3700.0, 0.012, n), walk(rng, 860.0, 0.014, n)
    oil, gold = walk(rng, 62.0, 0.018, n), walk(rng, 4200.0, 0.010, n)
    vix = 18.0
    rows: list[Row] = []
    for k, day in enumerate(market.days):
        vix = min(45.0, max(11.0, vix + 0.15 * (18.0 - vix) + rng.uniform(-1.5, 1.5)))
        trend = kospi[k] / kospi[max(0, k - 20)] - 1.0
        regime = "BULL" if trend > 0.03 else "BEAR" if trend < -0.03 else "SIDEWAYS"
        rows.append({
            "date": market.dates[k], "vix": vix, "fear_greed_index": min(100.0, max(0.0, 90.0 - 2.0 * vix
                                                                                     + rng.uniform(-8, 8))),
            "kospi_index": kospi[k], "kosdaq_index": kosdaq[k],
            "foreign_net_buying": rng.randrange(-800_000_000_000, 800_000_000_000),
            "institution_net_buying": rng.randrange(-500_000_000_000, 500_000_000_000),
            "usd_krw": fx["USD"][k], "jpy_krw": fx["JPY"][k], "oil_price": oil[k], "gold_price": gold[k],
            "market_regime": regime, "sentiment_score": max(-1.0, min(1.0, trend * 10.0)),
            "created_at": iso_stamp(rng, day, 17),
        })
    return rows


def index_rows(rng: random.Random, market: Market) -> list[Row]:
    """`global_market_indices`: the five indices per trading day."""
    n = len(market.days)
    series = {symbol: walk(rng, level, sigma, n + 1) for symbol, _, _, level, sigma, _ in INDICES}
    streak = dict.fromkeys(series, 0)
    rows: list[Row] = []
    for k, day in enumerate(market.days):
        for symbol, name, region, _, sigma, volume in INDICES:
            prev, close = series[symbol][k], series[symbol][k + 1]
            open_ = prev * math.exp(sigma * rng.uniform(-0.3, 0.3))
            change = (close / prev - 1.0) * 100.0
            s = streak[symbol]
            streak[symbol] = (s + 1 if s > 0 else 1) if change >= 0 else (s - 1 if s < 0 else -1)
            five = close / series[symbol][max(0, k - 4)] - 1.0
            rows.append({
                "date": market.dates[k], "symbol": symbol, "index_name": name, "region": region,
                "close_price": close, "open_price": open_,
                "high_price": max(open_, close) * math.exp(sigma * rng.uniform(0.0, 0.5)),
                "low_price": min(open_, close) * math.exp(-sigma * rng.uniform(0.0, 0.5)),
                "volume": int(volume * rng.uniform(0.7, 1.3)), "change_percent": change,
                "trend_5d": "UP" if five > 0.01 else "DOWN" if five < -0.01 else "SIDEWAYS",
                "consecutive_days": abs(streak[symbol]),
                "created_at": iso_stamp(rng, day + timedelta(days=1), 7),
            })
    return rows

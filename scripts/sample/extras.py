"""Rows of the tables the real file has outside the target schema (kelly_sizing, filter_cache_stage0..2,
kis_api_logs): a few each, so a migration has something to report as "not migrated"."""

from __future__ import annotations

import json
import random
from datetime import datetime, time, timedelta

from sample.ohlcv import Market
from sample.reference import Row
from sample.stamps import iso_stamp

_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice", "FHKST03010100"),
    ("/uapi/overseas-price/v1/quotations/dailyprice", "HHDFS76240000"),
    ("/uapi/domestic-stock/v1/trading/order-cash", "TTTC0802U"),
    ("/oauth2/tokenP", ""),
)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def extra_rows(rng: random.Random, market: Market, fx: dict[str, list[float]]) -> dict[str, list[Row]]:
    """Rows per extra table, keyed by table name."""
    last, today = market.days[-1], market.dates[-1]
    krw = {"KRW": 1.0} | {ccy: rates[-1] for ccy, rates in fx.items()}
    stocks = [t for t in market.tickers if t.asset_type == "STOCK"]
    sampled = rng.sample(stocks, min(30, len(stocks)))

    kelly: list[Row] = []
    for t in sampled[:10]:
        win, avg_win, avg_loss = rng.uniform(0.4, 0.65), rng.uniform(8.0, 25.0), rng.uniform(4.0, 9.0)
        fraction = max(0.0, win - (1.0 - win) / (avg_win / avg_loss))
        kelly.append({
            "ticker": t.code, "region": t.region, "analysis_date": today, "pattern_type": "Stage 2 breakout",
            "win_rate": win, "avg_win_pct": avg_win, "avg_loss_pct": avg_loss, "kelly_fraction": fraction,
            "half_kelly": fraction / 2.0, "recommended_position_pct": min(fraction / 2.0 * 100.0, 15.0),
            "max_position_pct": 15.0, "created_at": iso_stamp(rng, last, 20),
        })

    stage0: list[Row] = []
    stage1: list[Row] = []
    stage2: list[Row] = []
    for t in sampled:
        closes = market.closes[t.code]
        price_krw = closes[-1] * krw[t.currency]
        value_krw = int(market.mean_volume[t.code] * price_krw)
        passed0 = value_krw >= 500_000_000
        stage0.append({
            "ticker": t.code, "region": t.region, "name": t.name, "exchange": t.exchange,
            "market_cap_krw": int(value_krw * rng.uniform(50, 400)), "trading_value_krw": value_krw,
            "current_price_krw": price_krw, "passed_filter": int(passed0),
            "filter_reason": None if passed0 else "trading value below 500M KRW", "cache_date": today,
            "created_at": iso_stamp(rng, last, 7),
        })
        if not passed0:
            continue
        ma5, ma20, ma60 = (_mean(closes[-w:]) for w in (5, 20, 60))
        passed1 = closes[-1] > ma20
        stage1.append({
            "ticker": t.code, "region": t.region, "ma5": ma5, "ma20": ma20, "ma60": ma60,
            "rsi_14": rng.uniform(25.0, 75.0), "volume_ratio": rng.uniform(0.6, 1.4),
            "price_vs_ma20_pct": (closes[-1] / ma20 - 1.0) * 100.0, "passed_filter": int(passed1),
            "filter_reason": None if passed1 else "close below MA20", "cache_date": today,
            "created_at": iso_stamp(rng, last, 7),
        })
        if not passed1:
            continue
        score = rng.uniform(40.0, 95.0)
        stage2.append({
            "ticker": t.code, "region": t.region, "stage": 2, "total_score": score,
            "per": rng.uniform(5.0, 40.0), "pbr": rng.uniform(0.4, 5.0), "roe": rng.uniform(2.0, 30.0),
            "passed_filter": int(score >= 60.0), "filter_reason": None if score >= 60.0 else "score below 60",
            "cache_date": today, "created_at": iso_stamp(rng, last, 7),
        })

    logs: list[Row] = []
    moment = datetime.combine(last, time(8, 30))
    for t in sampled[:20]:
        endpoint, tr_id = rng.choice(_ENDPOINTS)
        status = rng.choices((200, 200, 200, 429, 500))[0]
        moment += timedelta(seconds=rng.randrange(1, 90), microseconds=rng.randrange(1_000_000))
        params = {"FID_INPUT_ISCD": t.code, "FID_PERIOD_DIV_CODE": "D"} if tr_id else {"grant_type": "client"}
        logs.append({
            "endpoint": endpoint, "tr_id": tr_id or None, "method": "POST" if not tr_id or "order" in endpoint
            else "GET", "request_params": json.dumps(params, sort_keys=True), "status_code": status,
            "response_code": "0" if status == 200 else "EGW00201" if status == 429 else "EGW00500",
            "response_message": "OK" if status == 200 else "rate limit exceeded" if status == 429
            else "internal server error", "latency_ms": rng.uniform(40.0, 900.0),
            "ticker": t.code if tr_id else None, "timestamp": moment.isoformat(),
        })
    return {"kelly_sizing": kelly, "filter_cache_stage0": stage0, "filter_cache_stage1": stage1,
            "filter_cache_stage2": stage2, "kis_api_logs": logs}

"""Rows of the reference tables: tickers, stock_details, etfs, etf_details, etf_holdings,
ticker_fundamentals. Each builder returns dicts keyed by column name, in insertion order."""

from __future__ import annotations

import random
from bisect import bisect_right
from datetime import date, timedelta

from sample.ohlcv import Market
from sample.stamps import iso_stamp
from sample.universe import ETF_INDEXES, REGION_BY_CODE, SECTORS, Ticker

Row = dict[str, object]

_ISSUERS: dict[str, tuple[str, ...]] = {
    "KR": ("Samsung Asset Management", "Mirae Asset Global Investments", "KB Asset Management"),
    "US": ("BlackRock", "Vanguard", "State Street Global Advisors"),
    "CN": ("China Asset Management", "E Fund Management"),
    "HK": ("Hang Seng Investment", "CSOP Asset Management"),
    "JP": ("Nomura Asset Management", "BlackRock Japan"), "VN": ("Dragon Capital", "SSI Asset Management"),
}
_THEMES = ("Broad Market", "Technology", "Semiconductor", "Dividend", "Financials")


def close_on(market: Market, code: str, day: str) -> float | None:
    """The ticker's close on the last trading day at or before `day`, None before the sample starts."""
    i = bisect_right(market.dates, day)
    return market.closes[code][i - 1] if i else None


def ticker_rows(rng: random.Random, market: Market) -> list[Row]:
    """One `tickers` row per ticker of the universe."""
    first, last = market.days[0], market.days[-1]
    rows: list[Row] = []
    for t in market.tickers:
        spec = REGION_BY_CODE[t.region]
        age_days = rng.randrange(90, 20 * 365 if t.asset_type == "ETF" else 45 * 365)
        created = iso_stamp(rng, first - timedelta(days=rng.randrange(1, 60)), 9)
        enriched_day = last - timedelta(days=rng.randrange(30))
        enriched = None if rng.random() < 0.2 else iso_stamp(rng, enriched_day, 20)
        rows.append({
            "ticker": t.code, "name": t.name, "name_eng": t.name_eng, "exchange": t.exchange,
            "region": t.region, "currency": t.currency, "asset_type": t.asset_type,
            "listing_date": (first - timedelta(days=age_days)).isoformat(), "lot_size": t.lot_size,
            "sector_code": None if t.sector is None else SECTORS[t.sector][1], "is_active": 1,
            "delisting_date": None, "created_at": created,
            "last_updated": iso_stamp(rng, last, 19), "enriched_at": enriched,
            "data_source": spec.data_source, "market_tier": t.market_tier,
        })
    return rows


def stock_detail_rows(rng: random.Random, market: Market) -> list[Row]:
    """One `stock_details` row per STOCK ticker, region filled (the orphans are a planted defect)."""
    first, last = market.days[0], market.days[-1]
    rows: list[Row] = []
    for t in market.tickers:
        if t.sector is None:
            continue
        sector, sector_code, industries = SECTORS[t.sector]
        industry, industry_code = rng.choice(industries)
        rows.append({
            "ticker": t.code, "sector": sector, "sector_code": sector_code, "industry": industry,
            "industry_code": industry_code, "is_spac": 1 if rng.random() < 0.01 else 0,
            "is_preferred": 1 if t.region == "KR" and t.code[-1] == "K" else 0,
            "par_value": rng.choice((100, 500, 1000, 5000)) if t.region == "KR" else None,
            "region": t.region,
            "created_at": iso_stamp(rng, first - timedelta(days=rng.randrange(1, 60)), 10),
            "last_updated": iso_stamp(rng, last, 19),
            "enriched_at": None if rng.random() < 0.3 else iso_stamp(rng, last, 21),
        })
    return rows


def _holdings(rng: random.Random, market: Market, etf: Ticker, members: list[str], aum: float) -> list[Row]:
    """A few month-apart snapshots of one ETF's constituents, weights drifting between them."""
    n = len(market.dates)
    as_of = [market.dates[i] for i in (n - 43, n - 22, n - 1) if i >= 0]
    weights = [rng.uniform(0.5, 3.0) for _ in members]
    invested = rng.uniform(90.0, 99.0)  # percent; the rest is cash
    previous: dict[str, float] = {}
    rows: list[Row] = []
    for day in as_of:
        weights = [w * rng.uniform(0.9, 1.1) for w in weights]
        total = sum(weights)
        ranked = sorted(zip(members, weights, strict=True), key=lambda mw: (-mw[1], mw[0]))
        stamp = iso_stamp(rng, date.fromisoformat(day), 20)
        for rank, (code, w) in enumerate(ranked, start=1):
            weight = invested * w / total
            price = close_on(market, code, day) or 1.0
            shares = max(1, int(aum * weight / 100.0 / price))
            rows.append({
                "etf_ticker": etf.code, "stock_ticker": code, "weight": weight, "shares": shares,
                "market_value": shares * price, "rank_in_etf": rank,
                "weight_change_from_prev": weight - previous[code] if code in previous else None,
                "as_of_date": day, "created_at": stamp, "data_source": "ETFCheck",
            })
            previous[code] = weight
    return rows


def etf_rows(rng: random.Random, market: Market) -> tuple[list[Row], list[Row], list[Row]]:
    """Rows of `etfs`, `etf_details` and `etf_holdings` for the ETF tickers (each holds 5-10 stocks of its
    region, fewer if the region has fewer)."""
    first, last = market.days[0], market.days[-1]
    stocks = {region: [t.code for t in market.tickers if t.region == region and t.asset_type == "STOCK"]
              for region in REGION_BY_CODE}
    etfs: list[Row] = []
    details: list[Row] = []
    holdings: list[Row] = []
    for t in market.tickers:
        if t.asset_type != "ETF":
            continue
        closes = market.closes[t.code]
        index = next(ix for ix in ETF_INDEXES[t.region] if t.name.endswith(ix))
        issuer = rng.choice(_ISSUERS[t.region])
        inception = (first - timedelta(days=rng.randrange(365, 20 * 365))).isoformat()
        leverage = rng.choices((1.0, 2.0, -1.0), weights=(85, 10, 5))[0]
        hedged = 1 if t.region != "KR" and rng.random() < 0.2 else 0
        listed_shares = rng.randrange(1_000_000, 500_000_000)
        aum = listed_shares * closes[-1]
        expense = rng.uniform(0.03, 0.9)
        errors = [rng.uniform(0.01, 0.3) * k for k in (1.0, 1.2, 1.4, 1.6)]
        pool = stocks[t.region]
        members = rng.sample(pool, min(len(pool), rng.randint(5, 10)))
        created = iso_stamp(rng, first - timedelta(days=rng.randrange(1, 60)), 10)
        updated = iso_stamp(rng, last, 19)
        etfs.append({
            "ticker": t.code, "name": t.name, "name_eng": t.name_eng, "region": t.region,
            "exchange": t.exchange,
            "category": "Equity" if leverage == 1.0 else "Leverage" if leverage > 1 else "Inverse",
            "subcategory": rng.choice(_THEMES), "tracking_index": index, "total_assets": aum,
            "expense_ratio": expense, "listed_shares": listed_shares, "issuer": issuer,
            "inception_date": inception, "leverage_ratio": leverage, "is_inverse": int(leverage < 0),
            "currency_hedged": hedged, "tracking_error_20d": errors[0], "tracking_error_60d": errors[1],
            "tracking_error_120d": errors[2], "tracking_error_250d": errors[3],
            "premium_discount": rng.uniform(-0.5, 0.5), "avg_daily_volume": market.mean_volume[t.code],
            "avg_daily_value": market.mean_volume[t.code] * closes[-1], "created_at": created,
            "last_updated": updated, "data_source": "KIS_API" if t.region == "KR" else "yfinance",
        })
        year = closes[-250:]
        details.append({
            "ticker": t.code, "issuer": issuer, "inception_date": inception,
            "underlying_asset_class": "Equity",
            "tracking_index": index, "geographic_region": t.region, "sector_theme": rng.choice(_THEMES),
            "fund_type": rng.choice(("Passive", "Passive", "Active")), "aum": int(aum),
            "listed_shares": listed_shares, "underlying_asset_count": len(members), "expense_ratio": expense,
            "ter": expense + rng.uniform(0.0, 0.1), "leverage_ratio": f"{leverage:g}x",
            "currency_hedged": hedged, "tracking_error_20d": errors[0], "tracking_error_60d": errors[1],
            "tracking_error_120d": errors[2], "tracking_error_250d": errors[3],
            "week_52_high": round(max(year)), "week_52_low": round(min(year)),
            "pension_eligible": 1 if t.region == "KR" and leverage == 1.0 else 0,
            "investment_strategy": f"Tracks the {index} with full replication.",
            "created_at": created, "last_updated": updated, "data_source": "ETFCheck",
        })
        holdings.extend(_holdings(rng, market, t, members, aum))
    return etfs, details, holdings


def _period_ends(end: date) -> list[tuple[str, str]]:
    """(date, period_type) of the fundamentals kept per stock: the last two quarter ends and the last
    year end before `end`."""
    quarter_ends = []
    year, month = end.year, end.month
    while len(quarter_ends) < 2:
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        if month in (3, 6, 9, 12):
            last_day = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1))
            if last_day < end:
                quarter_ends.append(last_day)
    return ([(d.isoformat(), "QUARTERLY") for d in sorted(quarter_ends)]
            + [(date(end.year - 1, 12, 31).isoformat(), "ANNUAL")])


def fundamental_rows(rng: random.Random, market: Market) -> list[Row]:
    """`ticker_fundamentals`: the latest DAILY snapshot for every ticker, plus two QUARTERLY and one
    ANNUAL period for stocks; close_price is NULL when the period predates the sample's prices."""
    end = market.days[-1]
    stock_periods = _period_ends(end)
    rows: list[Row] = []
    for t in market.tickers:
        periods = [(market.dates[-1], "DAILY")] + (stock_periods if t.asset_type == "STOCK" else [])
        shares = rng.randrange(5_000_000, 6_000_000_000)
        source = "pykrx" if t.region == "KR" else "yfinance"
        for day, period_type in sorted(periods):
            close = close_on(market, t.code, day)
            cap = int(shares * close) if close is not None else None
            dividend_yield = rng.uniform(0.0, 5.0)
            rows.append({
                "ticker": t.code, "date": day, "period_type": period_type, "shares_outstanding": shares,
                "market_cap": cap, "close_price": close, "per": rng.uniform(4.0, 45.0),
                "pbr": rng.uniform(0.3, 6.0), "psr": rng.uniform(0.2, 10.0), "pcr": rng.uniform(2.0, 30.0),
                "ev": int(cap * rng.uniform(0.9, 1.4)) if cap is not None else None,
                "ev_ebitda": rng.uniform(3.0, 25.0), "dividend_yield": dividend_yield,
                "dividend_per_share": close * dividend_yield / 100.0 if close is not None else None,
                "created_at": iso_stamp(rng, end, 21), "data_source": source,
            })
    return rows

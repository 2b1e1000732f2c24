"""The SQLite DDL the sample generator writes.

CONTRACT_DDL holds the thirteen CREATE TABLE statements of the source contract
(shared/spock_source_schema.sql) copied verbatim, so the generator needs no file outside the package at
run time. EXTRA_DDL holds tables the real spock_local.db also carries but the PostgreSQL target does not;
their columns are invented (the contract names the tables only), small and plausible.
"""

from __future__ import annotations

CONTRACT_DDL: dict[str, str] = {
    "tickers": """\
CREATE TABLE tickers (
    ticker          TEXT PRIMARY KEY,            -- note: no region in the key
    name            TEXT NOT NULL,
    name_eng        TEXT,
    exchange        TEXT NOT NULL,
    region          TEXT NOT NULL,
    currency        TEXT NOT NULL DEFAULT 'KRW',
    asset_type      TEXT NOT NULL DEFAULT 'STOCK',   -- STOCK, ETF, ...
    listing_date    TEXT,
    lot_size        INTEGER DEFAULT 1,
    sector_code     TEXT,
    is_active       BOOLEAN DEFAULT 1,
    delisting_date  TEXT,
    created_at      TEXT NOT NULL,
    last_updated    TEXT NOT NULL,
    enriched_at     TEXT,
    data_source     TEXT,
    market_tier     TEXT DEFAULT 'MAIN'
);""",
    "ohlcv_data": """\
CREATE TABLE ohlcv_data (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ticker        TEXT NOT NULL,
    timeframe     TEXT NOT NULL,                -- 'D', 'W', 'M'
    date          TEXT NOT NULL,                -- 'YYYY-MM-DD'
    region        TEXT,                         -- nullable in the real schema
    open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
    volume        BIGINT NOT NULL,
    ma5 REAL, ma20 REAL, ma60 REAL, ma120 REAL, ma200 REAL,
    rsi_14 REAL, macd REAL, macd_signal REAL, macd_hist REAL,
    bb_upper REAL, bb_middle REAL, bb_lower REAL,
    atr_14 REAL, atr REAL, volume_ma20 REAL, volume_ratio REAL,
    created_at    TEXT NOT NULL,
    UNIQUE (ticker, region, timeframe, date)
);""",
    "stock_details": """\
CREATE TABLE stock_details (
    ticker        TEXT PRIMARY KEY REFERENCES tickers(ticker) ON DELETE CASCADE,
    sector TEXT, sector_code TEXT, industry TEXT, industry_code TEXT,
    is_spac       BOOLEAN DEFAULT 0,
    is_preferred  BOOLEAN DEFAULT 0,
    par_value     INTEGER,
    region        TEXT,                         -- nullable; orphans exist in real data
    created_at    TEXT NOT NULL,
    last_updated  TEXT NOT NULL,
    enriched_at   TEXT
);""",
    "etfs": """\
CREATE TABLE etfs (
    ticker TEXT PRIMARY KEY, name TEXT, name_eng TEXT, region TEXT NOT NULL, exchange TEXT,
    category TEXT, subcategory TEXT, tracking_index TEXT, total_assets REAL, expense_ratio REAL,
    listed_shares INTEGER, issuer TEXT, inception_date TEXT, leverage_ratio REAL, is_inverse BOOLEAN,
    currency_hedged BOOLEAN, tracking_error_20d REAL, tracking_error_60d REAL, tracking_error_120d REAL,
    tracking_error_250d REAL, premium_discount REAL, avg_daily_volume REAL, avg_daily_value REAL,
    created_at TEXT, last_updated TEXT, data_source TEXT
);""",
    "etf_details": """\
CREATE TABLE etf_details (
    ticker                 TEXT PRIMARY KEY REFERENCES tickers(ticker) ON DELETE CASCADE,  -- no region
    issuer TEXT, inception_date TEXT, underlying_asset_class TEXT,
    tracking_index         TEXT NOT NULL,
    geographic_region TEXT, sector_theme TEXT, fund_type TEXT,
    aum BIGINT, listed_shares BIGINT, underlying_asset_count INTEGER,
    expense_ratio          REAL NOT NULL,
    ter REAL, leverage_ratio TEXT, currency_hedged BOOLEAN,
    tracking_error_20d REAL, tracking_error_60d REAL, tracking_error_120d REAL, tracking_error_250d REAL,
    week_52_high INTEGER, week_52_low INTEGER, pension_eligible BOOLEAN, investment_strategy TEXT,
    created_at TEXT NOT NULL, last_updated TEXT NOT NULL, data_source TEXT DEFAULT 'ETFCheck'
);""",
    "etf_holdings": """\
CREATE TABLE etf_holdings (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    etf_ticker    TEXT NOT NULL REFERENCES etfs(ticker) ON DELETE CASCADE,
    stock_ticker  TEXT NOT NULL REFERENCES tickers(ticker) ON DELETE CASCADE,
    weight        REAL NOT NULL,
    shares INTEGER, market_value REAL, rank_in_etf INTEGER, weight_change_from_prev REAL,
    as_of_date    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    data_source   TEXT,
    UNIQUE (etf_ticker, stock_ticker, as_of_date)
);""",
    "technical_analysis": """\
CREATE TABLE technical_analysis (               -- no region
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticker TEXT NOT NULL, analysis_date TEXT NOT NULL,
    stage INTEGER, stage_confidence REAL,
    layer1_macro_score REAL, layer2_structural_score REAL, layer3_micro_score REAL, total_score REAL,
    signal TEXT,                                 -- BUY, WATCH, AVOID
    signal_strength REAL, gpt_pattern TEXT, gpt_confidence REAL, gpt_analysis TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (ticker, analysis_date)
);""",
    "trades": """\
CREATE TABLE trades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticker TEXT NOT NULL, region TEXT NOT NULL DEFAULT 'KR',
    side TEXT NOT NULL, order_type TEXT NOT NULL, quantity INTEGER NOT NULL,
    entry_price REAL, exit_price REAL, price REAL NOT NULL, amount REAL NOT NULL,
    fee REAL DEFAULT 0, tax REAL DEFAULT 0, order_no TEXT, execution_no TEXT,
    entry_timestamp TEXT, exit_timestamp TEXT,   -- 'YYYY-MM-DD HH:MM:SS'
    order_time TEXT NOT NULL, execution_time TEXT,
    trade_status TEXT DEFAULT 'OPEN', sector TEXT, position_size_percent REAL, reason TEXT,
    created_at TEXT NOT NULL
);""",
    "portfolio": """\
CREATE TABLE portfolio (                         -- no region; key is the ticker alone
    ticker TEXT PRIMARY KEY,
    quantity INTEGER NOT NULL, avg_price REAL NOT NULL,
    current_price REAL, market_value REAL, unrealized_pnl REAL, unrealized_pnl_pct REAL,
    stop_loss_price REAL, profit_target_price REAL,
    entry_date TEXT NOT NULL, entry_score REAL, last_updated TEXT NOT NULL
);""",
    "market_sentiment": """\
CREATE TABLE market_sentiment (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    date TEXT NOT NULL UNIQUE,
    vix REAL, fear_greed_index REAL, kospi_index REAL, kosdaq_index REAL,
    foreign_net_buying BIGINT, institution_net_buying BIGINT,
    usd_krw REAL, jpy_krw REAL, oil_price REAL, gold_price REAL,
    market_regime TEXT, sentiment_score REAL,
    created_at TEXT NOT NULL
);""",
    "ticker_fundamentals": """\
CREATE TABLE ticker_fundamentals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticker TEXT NOT NULL, date TEXT NOT NULL,
    period_type TEXT NOT NULL,                   -- DAILY, QUARTERLY, ANNUAL
    shares_outstanding BIGINT, market_cap BIGINT, close_price REAL,
    per REAL, pbr REAL, psr REAL, pcr REAL, ev BIGINT, ev_ebitda REAL,
    dividend_yield REAL, dividend_per_share REAL,
    created_at TEXT NOT NULL, data_source TEXT,
    UNIQUE (ticker, date, period_type)
);""",
    "exchange_rate_history": """\
CREATE TABLE exchange_rate_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    currency TEXT NOT NULL,                      -- ISO code; rate is in KRW
    rate REAL NOT NULL,
    timestamp TEXT NOT NULL,
    rate_date TEXT NOT NULL,
    source TEXT DEFAULT 'BOK_API',
    created_at TEXT DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (currency, rate_date)
);""",
    "global_market_indices": """\
CREATE TABLE global_market_indices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    date TEXT NOT NULL, symbol TEXT NOT NULL,    -- ^GSPC, ^IXIC, ^DJI, ^HSI, ^N225
    index_name TEXT NOT NULL,
    region TEXT NOT NULL,                        -- includes values such as 'ASIA'
    close_price REAL NOT NULL, open_price REAL NOT NULL, high_price REAL NOT NULL, low_price REAL NOT NULL,
    volume BIGINT, change_percent REAL NOT NULL, trend_5d TEXT, consecutive_days INTEGER,
    created_at TEXT NOT NULL,
    UNIQUE (date, symbol)
);""",
}

EXTRA_DDL: dict[str, str] = {
    "kelly_sizing": """\
CREATE TABLE kelly_sizing (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticker TEXT NOT NULL, region TEXT,
    analysis_date TEXT NOT NULL,
    pattern_type TEXT,
    win_rate REAL, avg_win_pct REAL, avg_loss_pct REAL,
    kelly_fraction REAL, half_kelly REAL,
    recommended_position_pct REAL, max_position_pct REAL,
    created_at TEXT NOT NULL,
    UNIQUE (ticker, analysis_date)
);""",
    "filter_cache_stage0": """\
CREATE TABLE filter_cache_stage0 (
    ticker TEXT NOT NULL, region TEXT NOT NULL, name TEXT, exchange TEXT,
    market_cap_krw BIGINT, trading_value_krw BIGINT, current_price_krw REAL,
    passed_filter BOOLEAN NOT NULL DEFAULT 0, filter_reason TEXT,
    cache_date TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (ticker, region, cache_date)
);""",
    "filter_cache_stage1": """\
CREATE TABLE filter_cache_stage1 (
    ticker TEXT NOT NULL, region TEXT NOT NULL,
    ma5 REAL, ma20 REAL, ma60 REAL, rsi_14 REAL, volume_ratio REAL, price_vs_ma20_pct REAL,
    passed_filter BOOLEAN NOT NULL DEFAULT 0, filter_reason TEXT,
    cache_date TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (ticker, region, cache_date)
);""",
    "filter_cache_stage2": """\
CREATE TABLE filter_cache_stage2 (
    ticker TEXT NOT NULL, region TEXT NOT NULL,
    stage INTEGER, total_score REAL, per REAL, pbr REAL, roe REAL,
    passed_filter BOOLEAN NOT NULL DEFAULT 0, filter_reason TEXT,
    cache_date TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (ticker, region, cache_date)
);""",
    "kis_api_logs": """\
CREATE TABLE kis_api_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL, tr_id TEXT, method TEXT NOT NULL DEFAULT 'GET',
    request_params TEXT, status_code INTEGER, response_code TEXT, response_message TEXT,
    latency_ms REAL, ticker TEXT,
    timestamp TEXT NOT NULL
);""",
}

CONTRACT_TABLES: tuple[str, ...] = tuple(CONTRACT_DDL)
EXTRA_TABLES: tuple[str, ...] = tuple(EXTRA_DDL)
ALL_TABLES: tuple[str, ...] = CONTRACT_TABLES + EXTRA_TABLES

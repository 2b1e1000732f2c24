-- Continuous aggregates (TimescaleDB mode). Created WITH NO DATA; refreshed by their policies, by the
-- migration after a load and by the weekly maintenance. COUNT(DISTINCT) is not allowed in a continuous
-- aggregate, so daily summaries count rows: one row per ticker and day for timeframe 'D'.
-- Quarterly and yearly are built on the monthly aggregate (hierarchical continuous aggregates): a refresh
-- reads its ~20x fewer rows instead of every daily bar again, so the monthly one is refreshed first
-- (registry.AGGREGATES keeps that order). first/last of the months' first/last values are the period's.
CREATE MATERIALIZED VIEW IF NOT EXISTS public.ohlcv_monthly WITH (timescaledb.continuous) AS
SELECT ticker, region, time_bucket(INTERVAL '1 month', date) AS month,
       first(open, date) AS open, max(high) AS high, min(low) AS low, last(close, date) AS close,
       sum(volume) AS volume, first(ma5, date) AS ma5_start, last(ma20, date) AS ma20_end,
       last(rsi, date) AS rsi_end, count(*) AS trading_days
FROM public.ohlcv_data
WHERE timeframe = 'D'
GROUP BY ticker, region, time_bucket(INTERVAL '1 month', date)
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS public.ohlcv_quarterly WITH (timescaledb.continuous) AS
SELECT ticker, region, time_bucket(INTERVAL '3 months', month) AS quarter,
       first(open, month) AS open, max(high) AS high, min(low) AS low, last(close, month) AS close,
       sum(volume) AS volume, first(ma5_start, month) AS ma5_start, last(ma20_end, month) AS ma20_end,
       last(rsi_end, month) AS rsi_end, sum(trading_days)::bigint AS trading_days
FROM public.ohlcv_monthly
GROUP BY ticker, region, time_bucket(INTERVAL '3 months', month)
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS public.ohlcv_yearly WITH (timescaledb.continuous) AS
SELECT ticker, region, time_bucket(INTERVAL '1 year', month) AS year,
       first(open, month) AS open, max(high) AS high, min(low) AS low, last(close, month) AS close,
       sum(volume) AS volume, sum(trading_days)::bigint AS trading_days
FROM public.ohlcv_monthly
GROUP BY ticker, region, time_bucket(INTERVAL '1 year', month)
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS public.ohlcv_daily_summary WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 day', date) AS day, region,
       count(*) AS n_tickers, avg(close) AS avg_close, avg(volume) AS avg_volume,
       sum(volume) AS total_volume, avg(rsi) AS avg_rsi, avg(atr) AS avg_atr
FROM public.ohlcv_data
WHERE timeframe = 'D'
GROUP BY time_bucket(INTERVAL '1 day', date), region
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS public.factor_monthly_performance WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 month', calculation_date) AS month, region, signal,
       count(*) AS n_stocks, avg(total_score) AS avg_score, avg(pe_ratio) AS avg_pe,
       avg(momentum_12m) AS avg_momentum, avg(roe) AS avg_roe, avg(volatility_factor) AS avg_volatility
FROM public.factor_scores
GROUP BY time_bucket(INTERVAL '1 month', calculation_date), region, signal
WITH NO DATA;

SELECT add_continuous_aggregate_policy('public.ohlcv_monthly', start_offset => INTERVAL '4 months',
    end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 day', if_not_exists => TRUE);
SELECT add_continuous_aggregate_policy('public.ohlcv_quarterly', start_offset => INTERVAL '1 year',
    end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 day', if_not_exists => TRUE);
SELECT add_continuous_aggregate_policy('public.ohlcv_yearly', start_offset => INTERVAL '3 years',
    end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 day', if_not_exists => TRUE);
SELECT add_continuous_aggregate_policy('public.ohlcv_daily_summary', start_offset => INTERVAL '7 days',
    end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);
SELECT add_continuous_aggregate_policy('public.factor_monthly_performance', start_offset => INTERVAL '4 months',
    end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 day', if_not_exists => TRUE);

-- The same aggregates as ordinary materialized views (plain PostgreSQL mode: RDS and friends have no
-- TimescaleDB). Each has a unique index so REFRESH MATERIALIZED VIEW CONCURRENTLY can be used.
-- Quarterly and yearly read the bars, not the monthly view as their continuous aggregates do: a view over
-- another cannot be refreshed while that one is unpopulated, which would leave a restore of a dump taken
-- in that state (REFRESH ... WITH NO DATA on the monthly view) with its quarters and years unpopulated.
CREATE MATERIALIZED VIEW IF NOT EXISTS public.ohlcv_monthly AS
SELECT ticker, region, date_trunc('month', date)::date AS month,
       (array_agg(open ORDER BY date))[1] AS open, max(high) AS high, min(low) AS low,
       (array_agg(close ORDER BY date DESC))[1] AS close, sum(volume) AS volume,
       (array_agg(ma5 ORDER BY date))[1] AS ma5_start, (array_agg(ma20 ORDER BY date DESC))[1] AS ma20_end,
       (array_agg(rsi ORDER BY date DESC))[1] AS rsi_end, count(*) AS trading_days
FROM public.ohlcv_data
WHERE timeframe = 'D'
GROUP BY ticker, region, date_trunc('month', date)
WITH NO DATA;
CREATE UNIQUE INDEX IF NOT EXISTS ux_ohlcv_monthly ON public.ohlcv_monthly (ticker, region, month);

CREATE MATERIALIZED VIEW IF NOT EXISTS public.ohlcv_quarterly AS
SELECT ticker, region, date_trunc('quarter', date)::date AS quarter,
       (array_agg(open ORDER BY date))[1] AS open, max(high) AS high, min(low) AS low,
       (array_agg(close ORDER BY date DESC))[1] AS close, sum(volume) AS volume,
       (array_agg(ma5 ORDER BY date))[1] AS ma5_start, (array_agg(ma20 ORDER BY date DESC))[1] AS ma20_end,
       (array_agg(rsi ORDER BY date DESC))[1] AS rsi_end, count(*) AS trading_days
FROM public.ohlcv_data
WHERE timeframe = 'D'
GROUP BY ticker, region, date_trunc('quarter', date)
WITH NO DATA;
CREATE UNIQUE INDEX IF NOT EXISTS ux_ohlcv_quarterly ON public.ohlcv_quarterly (ticker, region, quarter);

CREATE MATERIALIZED VIEW IF NOT EXISTS public.ohlcv_yearly AS
SELECT ticker, region, date_trunc('year', date)::date AS year,
       (array_agg(open ORDER BY date))[1] AS open, max(high) AS high, min(low) AS low,
       (array_agg(close ORDER BY date DESC))[1] AS close, sum(volume) AS volume, count(*) AS trading_days
FROM public.ohlcv_data
WHERE timeframe = 'D'
GROUP BY ticker, region, date_trunc('year', date)
WITH NO DATA;
CREATE UNIQUE INDEX IF NOT EXISTS ux_ohlcv_yearly ON public.ohlcv_yearly (ticker, region, year);

CREATE MATERIALIZED VIEW IF NOT EXISTS public.ohlcv_daily_summary AS
SELECT date AS day, region,
       count(*) AS n_tickers, avg(close) AS avg_close, avg(volume) AS avg_volume,
       sum(volume) AS total_volume, avg(rsi) AS avg_rsi, avg(atr) AS avg_atr
FROM public.ohlcv_data
WHERE timeframe = 'D'
GROUP BY date, region
WITH NO DATA;
CREATE UNIQUE INDEX IF NOT EXISTS ux_ohlcv_daily_summary ON public.ohlcv_daily_summary (day, region);

CREATE MATERIALIZED VIEW IF NOT EXISTS public.factor_monthly_performance AS
SELECT date_trunc('month', calculation_date)::date AS month, region, coalesce(signal, 'NONE') AS signal,
       count(*) AS n_stocks, avg(total_score) AS avg_score, avg(pe_ratio) AS avg_pe,
       avg(momentum_12m) AS avg_momentum, avg(roe) AS avg_roe, avg(volatility_factor) AS avg_volatility
FROM public.factor_scores
GROUP BY date_trunc('month', calculation_date), region, coalesce(signal, 'NONE')
WITH NO DATA;
CREATE UNIQUE INDEX IF NOT EXISTS ux_factor_monthly_performance
    ON public.factor_monthly_performance (month, region, signal);

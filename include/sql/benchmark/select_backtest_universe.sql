-- SLO: a backtest's read: 50 tickers of one region over 5 years, closes and volumes in date order.
SELECT ticker, date, open, high, low, close, volume
FROM public.ohlcv_data
WHERE region = %(region)s AND ticker = ANY(%(tickers)s) AND timeframe = 'D'
  AND date > %(end)s::date - make_interval(years => %(years)s) AND date <= %(end)s::date
ORDER BY ticker, date

-- SLO: technical-analysis join: a ticker's bars with the stage analysis of the same day, 1 year.
SELECT o.date, o.close, o.ma20, o.ma60, o.rsi, ta.stage, ta.total_score, ta.signal
FROM public.ohlcv_data o
LEFT JOIN public.technical_analysis ta
  ON ta.ticker = o.ticker AND ta.region = o.region AND ta.analysis_date = o.date
WHERE o.ticker = %(ticker)s AND o.region = %(region)s AND o.timeframe = 'D'
  AND o.date > %(end)s::date - make_interval(years => %(years)s) AND o.date <= %(end)s::date
ORDER BY o.date

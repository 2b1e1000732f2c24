-- SLO: one ticker over the last N years (1 and 10), all columns.
SELECT *
FROM public.ohlcv_data
WHERE ticker = %(ticker)s AND region = %(region)s AND timeframe = 'D'
  AND date > %(end)s::date - make_interval(years => %(years)s) AND date <= %(end)s::date
ORDER BY date

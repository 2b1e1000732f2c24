-- Compressed vs uncompressed chunks: one ticker between two dates.
SELECT date, open, high, low, close, volume
FROM public.ohlcv_data
WHERE ticker = %(ticker)s AND region = %(region)s AND timeframe = 'D'
  AND date >= %(start)s AND date < %(end)s
ORDER BY date

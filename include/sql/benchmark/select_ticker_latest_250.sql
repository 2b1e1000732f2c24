-- SLO: one ticker's latest 250 daily bars (the chart and the 250-day indicators).
SELECT date, open, high, low, close, volume, ma20, ma60, rsi
FROM public.ohlcv_data
WHERE ticker = %(ticker)s AND region = %(region)s AND timeframe = 'D'
ORDER BY date DESC
LIMIT 250

SELECT ticker
FROM ohlcv_data
WHERE region = %s AND timeframe = 'D' AND date > %s::date - 30
GROUP BY ticker
ORDER BY ticker
LIMIT 50

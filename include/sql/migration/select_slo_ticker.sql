SELECT ticker, region, max(date)
FROM ohlcv_data
WHERE region = ANY(%s) AND timeframe = 'D'
GROUP BY ticker, region
ORDER BY count(*) DESC, ticker
LIMIT 1

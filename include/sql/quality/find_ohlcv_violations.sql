-- ohlcv_rules: bars breaking the OHLCV business rules: high >= max(open, close), low <= min(open, close),
-- high >= low, every price > 0, volume >= 0 (NULL prices are null_required's business).
WITH broken AS (
    SELECT ticker, region, date, timeframe, open, high, low, close, volume,
           array_remove(ARRAY[
               CASE WHEN high < greatest(open, close) THEN 'high < max(open, close)' END,
               CASE WHEN low > least(open, close) THEN 'low > min(open, close)' END,
               CASE WHEN high < low THEN 'high < low' END,
               CASE WHEN least(open, high, low, close) <= 0 THEN 'price <= 0' END,
               CASE WHEN volume < 0 THEN 'volume < 0' END
           ], NULL) AS broken_rules
    FROM {table}
    WHERE region = %(region)s AND date >= %(window_start)s AND date < %(window_stop)s
)
SELECT *, count(*) OVER () AS violation_count
FROM broken
WHERE cardinality(broken_rules) > 0
ORDER BY ticker, date, timeframe
LIMIT %(sample_limit)s

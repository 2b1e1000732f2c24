-- missing_dates: gaps longer than gap_days calendar days between consecutive daily bars of a ticker.
-- Reads only the window (sargable on (ticker, region, date) and (region, date)); the first bar of each
-- ticker in the window is compared with that ticker's bar just before the window (one index probe per
-- ticker), so a gap that straddles the window's start is found too. {table} comes from the registry.
WITH win AS (
    SELECT ticker, region, date
    FROM {table}
    WHERE region = %(region)s AND timeframe = 'D'
      AND date >= %(window_start)s AND date < %(window_stop)s
), anchors AS (
    SELECT k.ticker, k.region, p.date
    FROM (SELECT DISTINCT ticker, region FROM win) AS k
    CROSS JOIN LATERAL (
        SELECT o.date FROM {table} AS o
        WHERE o.ticker = k.ticker AND o.region = k.region AND o.timeframe = 'D' AND o.date < %(window_start)s
        ORDER BY o.date DESC
        LIMIT 1
    ) AS p
), bars AS (
    SELECT ticker, region, date, LAG(date) OVER (PARTITION BY ticker, region ORDER BY date) AS prev_date
    FROM (SELECT * FROM win UNION ALL SELECT * FROM anchors) AS x
)
SELECT ticker, region, prev_date, date, date - prev_date AS gap_days, count(*) OVER () AS violation_count
FROM bars
WHERE prev_date IS NOT NULL AND date - prev_date > %(gap_days)s
ORDER BY gap_days DESC, ticker, date
LIMIT %(sample_limit)s

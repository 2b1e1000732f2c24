-- price_anomalies: daily returns more than z_threshold standard deviations from the mean return of their
-- ticker (the seeds' z-score), statistics over the window's returns. The first bar of the window gets its
-- return from the ticker's bar just before the window (one index probe per ticker).
WITH win AS (
    SELECT ticker, region, date, close
    FROM {table}
    WHERE region = %(region)s AND timeframe = 'D'
      AND date >= %(window_start)s AND date < %(window_stop)s
), anchors AS (
    SELECT k.ticker, k.region, p.date, p.close
    FROM (SELECT DISTINCT ticker, region FROM win) AS k
    CROSS JOIN LATERAL (
        SELECT o.date, o.close FROM {table} AS o
        WHERE o.ticker = k.ticker AND o.region = k.region AND o.timeframe = 'D' AND o.date < %(window_start)s
        ORDER BY o.date DESC
        LIMIT 1
    ) AS p
), returns AS (
    SELECT ticker, region, date, close,
           LAG(date) OVER w AS prev_date,
           LAG(close) OVER w AS prev_close,
           (close - LAG(close) OVER w) / NULLIF(LAG(close) OVER w, 0) AS daily_return
    FROM (SELECT * FROM win UNION ALL SELECT * FROM anchors) AS x
    WINDOW w AS (PARTITION BY ticker, region ORDER BY date)
), scored AS (
    SELECT r.*,
           (daily_return - avg(daily_return) OVER t) / NULLIF(stddev_samp(daily_return) OVER t, 0) AS z_score
    FROM returns AS r
    WHERE daily_return IS NOT NULL
    WINDOW t AS (PARTITION BY ticker, region)
)
SELECT ticker, region, prev_date, date, prev_close, close, round(daily_return, 6) AS daily_return,
       round(z_score, 2) AS z_score, count(*) OVER () AS violation_count
FROM scored
WHERE abs(z_score) > %(z_threshold)s
ORDER BY abs(z_score) DESC, ticker, date
LIMIT %(sample_limit)s

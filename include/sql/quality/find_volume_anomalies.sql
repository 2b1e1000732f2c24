-- volume_anomalies: daily volumes more than z_threshold standard deviations from the mean volume of their
-- ticker over the window (the seeds' volume z-score).
WITH win AS (
    SELECT ticker, region, date, volume
    FROM {table}
    WHERE region = %(region)s AND timeframe = 'D'
      AND date >= %(window_start)s AND date < %(window_stop)s
), scored AS (
    SELECT w.*,
           avg(volume) OVER t AS mean_volume,
           (volume - avg(volume) OVER t) / NULLIF(stddev_samp(volume) OVER t, 0) AS z_score
    FROM win AS w
    WINDOW t AS (PARTITION BY ticker, region)
)
SELECT ticker, region, date, volume, round(mean_volume) AS mean_volume, round(z_score, 2) AS z_score,
       count(*) OVER () AS violation_count
FROM scored
WHERE abs(z_score) > %(z_threshold)s
ORDER BY abs(z_score) DESC, ticker, date
LIMIT %(sample_limit)s

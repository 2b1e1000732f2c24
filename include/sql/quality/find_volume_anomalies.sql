-- volume_anomalies: a daily ('D') volume of a ticker whose |z| exceeds z_threshold, z = (volume - mean) /
-- sample standard deviation of that ticker's volumes over the checked window.
--
-- One pass over the scope (no order needed): mean, deviation, smallest and largest volume per ticker (in double
-- precision: numeric aggregates of bigint cost several times as much).
-- Only a ticker whose extreme volume lies beyond the threshold has its bars read again (its own index range)
-- to list them. {table}, {scope} and {result_region} come from the table registry.
WITH per_ticker AS MATERIALIZED (
    SELECT ticker, region, avg(volume::float8) AS mean, stddev_samp(volume::float8) AS sd,
           min(volume) AS lowest, max(volume) AS highest
    FROM {table}
    WHERE timeframe = 'D' AND {scope}
    GROUP BY ticker, region
), outliers AS (
    SELECT v.ticker, v.region, v.date, v.volume, s.mean AS mean_volume, (v.volume - s.mean) / s.sd AS z_score
    FROM per_ticker AS s
    -- OFFSET 0 keeps this a per-ticker lookup (an index range per flagged ticker) instead of a join that
    -- would read the whole scope again
    CROSS JOIN LATERAL (
        SELECT ticker, region, date, volume FROM {table}
        WHERE ticker = s.ticker AND region = s.region AND timeframe = 'D' AND {scope}
        OFFSET 0
    ) AS v
    WHERE s.sd > 0 AND greatest((s.highest - s.mean) / s.sd, (s.mean - s.lowest) / s.sd) > %(z_threshold)s
), ranked AS (
    SELECT outliers.*, {result_region} AS result_region,
           count(*) OVER (PARTITION BY {result_region}) AS violation_count,
           row_number() OVER (PARTITION BY {result_region} ORDER BY abs(z_score) DESC, ticker, date) AS sample_rank
    FROM outliers
    WHERE abs(z_score) > %(z_threshold)s
)
SELECT ticker, region, date, volume, round(mean_volume::numeric) AS mean_volume, round(z_score::numeric, 2) AS z_score,
       result_region, violation_count
FROM ranked
WHERE sample_rank <= %(sample_limit)s

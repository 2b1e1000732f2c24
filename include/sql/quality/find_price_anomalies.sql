-- price_anomalies: a daily close-to-close return of a ticker (between two consecutive 'D' bars) whose |z|
-- exceeds z_threshold, z = (return - mean) / sample standard deviation of that ticker's returns over the
-- checked window.
--
-- One pass over the scope, every region at once, in the (ticker, region, date) order of the table's key: LAG
-- gives each bar its previous close and the returns are aggregated per ticker (in double precision: the
-- z-scores need no more digits than that, and numeric aggregates cost several times as much). A ticker's first
-- bar in a look-back window takes its previous close from the bar just before the window (an index probe, run
-- only for the rows LAG has no bar for; never for the whole history). Only a ticker whose largest or smallest
-- return lies beyond the threshold has its returns read again (its own index range) to list them: a clean
-- history costs one pass. {table}, {scope} and {result_region} come from the table registry.
WITH returns AS NOT MATERIALIZED (
    SELECT ticker, region, date, close,
           closing / NULLIF(coalesce(lag(closing) OVER w, CASE WHEN %(windowed)s THEN (
               SELECT o.close::float8 FROM {table} AS o
               WHERE o.ticker = x.ticker AND o.region = x.region AND o.timeframe = 'D'
                 AND o.date < %(window_start)s
               ORDER BY o.date DESC
               LIMIT 1) END), 0) - 1 AS daily_return
    FROM (SELECT ticker, region, date, close, close::float8 AS closing
          FROM {table}
          WHERE timeframe = 'D' AND {scope}) AS x
    WINDOW w AS (PARTITION BY ticker, region ORDER BY date)
), per_ticker AS MATERIALIZED (
    SELECT ticker, region, avg(daily_return) AS mean, stddev_samp(daily_return) AS sd,
           min(daily_return) AS lowest, max(daily_return) AS highest
    FROM returns
    GROUP BY ticker, region
), outliers AS (
    SELECT r.ticker, r.region, r.date, r.close, r.daily_return, (r.daily_return - s.mean) / s.sd AS z_score
    FROM per_ticker AS s
    -- OFFSET 0 keeps this a per-ticker lookup (an index range per flagged ticker) instead of a join that
    -- would read every ticker's returns again
    CROSS JOIN LATERAL (SELECT * FROM returns WHERE ticker = s.ticker AND region = s.region OFFSET 0) AS r
    WHERE s.sd > 0 AND greatest((s.highest - s.mean) / s.sd, (s.mean - s.lowest) / s.sd) > %(z_threshold)s
), ranked AS (
    SELECT outliers.*, {result_region} AS result_region,
           count(*) OVER (PARTITION BY {result_region}) AS violation_count,
           row_number() OVER (PARTITION BY {result_region} ORDER BY abs(z_score) DESC, ticker, date) AS sample_rank
    FROM outliers
    WHERE abs(z_score) > %(z_threshold)s
)
-- the sample rows show the bar each return was taken against
SELECT r.ticker, r.region, p.date AS prev_date, r.date, p.close AS prev_close, r.close,
       round(r.daily_return::numeric, 6) AS daily_return, round(r.z_score::numeric, 2) AS z_score,
       r.result_region, r.violation_count
FROM ranked AS r
CROSS JOIN LATERAL (
    SELECT o.date, o.close FROM {table} AS o
    WHERE o.ticker = r.ticker AND o.region = r.region AND o.timeframe = 'D' AND o.date < r.date
    ORDER BY o.date DESC
    LIMIT 1
) AS p
WHERE r.sample_rank <= %(sample_limit)s

-- missing_dates: a gap is two consecutive 'D' bars of a ticker (ticker and region) more than gap_days
-- calendar days apart.
--
-- One pass over the scope, every region at once, in the (ticker, region, date) order of the table's key
-- (an index-only scan per chunk or partition, merged: LAG needs no sort). A ticker's first bar in a
-- look-back window is compared with its bar just before the window: COALESCE runs that index probe only
-- for the rows LAG has no bar for (one per ticker), so a gap straddling the window's start is found too.
-- The whole history has no bar before it (windowed is false: the probe is not even planned).
-- {table}, {scope} and {result_region} come from the table registry.
WITH bars AS (
    SELECT ticker, region, date,
           coalesce(lag(date) OVER w, CASE WHEN %(windowed)s THEN (
               SELECT o.date FROM {table} AS o
               WHERE o.ticker = x.ticker AND o.region = x.region AND o.timeframe = 'D'
                 AND o.date < %(window_start)s
               ORDER BY o.date DESC
               LIMIT 1) END) AS prev_date
    FROM {table} AS x
    WHERE timeframe = 'D' AND {scope}
    WINDOW w AS (PARTITION BY ticker, region ORDER BY date)
), gaps AS (
    SELECT ticker, region, prev_date, date, date - prev_date AS gap_days, {result_region} AS result_region
    FROM bars
    WHERE date - prev_date > %(gap_days)s
), ranked AS (
    SELECT gaps.*, count(*) OVER (PARTITION BY result_region) AS violation_count,
           row_number() OVER (PARTITION BY result_region ORDER BY gap_days DESC, ticker, date) AS sample_rank
    FROM gaps
)
SELECT ticker, region, prev_date, date, gap_days, result_region, violation_count
FROM ranked
WHERE sample_rank <= %(sample_limit)s

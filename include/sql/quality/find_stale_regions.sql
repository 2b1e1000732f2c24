-- freshness: a region whose newest bar (up to as_of) is more than max_age_days old, or which has none.
--
-- One index probe per requested region: max(date) is read from the end of the (region, date DESC) index.
SELECT r.region, n.newest_date, %(as_of)s::date - n.newest_date AS age_days, r.region AS result_region,
       1 AS violation_count
FROM unnest(%(regions)s::text[]) AS r(region)
CROSS JOIN LATERAL (
    SELECT max({time_column}) AS newest_date FROM {table}
    WHERE region = r.region AND {time_column} <= %(as_of)s
) AS n
WHERE n.newest_date IS NULL OR %(as_of)s::date - n.newest_date > %(max_age_days)s

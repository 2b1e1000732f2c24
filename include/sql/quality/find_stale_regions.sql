-- freshness: the newest bar of a region (up to as_of) older than max_age_days, or no bar at all.
-- max(date) per region is read from the end of the (region, date DESC) index.
SELECT %(region)s::text AS region, max(date) AS newest_date, %(as_of)s::date - max(date) AS age_days,
       1 AS violation_count
FROM {table}
WHERE region = %(region)s AND date <= %(as_of)s
HAVING max(date) IS NULL OR %(as_of)s::date - max(date) > %(max_age_days)s

SELECT region, min(day), max(day), count(DISTINCT day)
FROM ops.migration_checksums
WHERE table_name = %(table)s
  AND region = ANY(%(regions)s)
  AND (day >= %(start)s OR %(start)s IS NULL)
  AND (day <= %(end)s OR %(end)s IS NULL)
GROUP BY 1

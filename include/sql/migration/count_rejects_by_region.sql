SELECT region, count(*)
FROM ops.migration_rejects
WHERE table_name = %(table)s
  AND (time_value >= %(start_s)s OR %(start_s)s IS NULL)
  AND (time_value < %(end_s)s OR %(end_s)s IS NULL)
GROUP BY 1

SELECT run_id, count(*), min(rejected_at), max(rejected_at)
FROM ops.migration_rejects
WHERE table_name = %(table)s
  AND region = %(region)s
  AND (time_value >= %(start_s)s OR %(start_s)s IS NULL)
  AND (time_value < %(end_s)s OR %(end_s)s IS NULL)
GROUP BY 1
ORDER BY 3

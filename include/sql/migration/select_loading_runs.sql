SELECT DISTINCT run_id
FROM ops.migration_checksums
WHERE table_name = %(table)s
  AND region = %(region)s
  AND (day >= %(start)s OR %(start)s IS NULL)
  AND (day <= %(end)s OR %(end)s IS NULL)

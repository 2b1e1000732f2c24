SELECT region, {bucket} AS bucket, sum(row_count) AS n, sum(checksum) AS s
FROM ops.migration_checksums
WHERE table_name = %(table)s
  AND region = ANY(%(regions)s)
  AND (day >= %(start)s OR %(start)s IS NULL)
  AND (day <= %(end)s OR %(end)s IS NULL)
GROUP BY 1, 2

SELECT {region} AS region, {bucket} AS bucket, count(*) AS n, sum({row_hash}) AS s
FROM {table}
WHERE {slices}
GROUP BY 1, 2

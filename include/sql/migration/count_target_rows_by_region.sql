SELECT {region}, count(*) FROM {table} WHERE {slices} GROUP BY 1

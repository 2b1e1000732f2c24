SELECT {region}, min({time}::date), max({time}::date), count(DISTINCT {time}::date)
FROM {table}
WHERE {slices}
GROUP BY 1

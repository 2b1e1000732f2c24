SELECT a.ticker, a.region
FROM unnest(%s::text[], %s::text[]) AS a(ticker, region)
WHERE EXISTS (SELECT 1 FROM {table} r WHERE {match})

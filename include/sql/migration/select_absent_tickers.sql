SELECT ticker, region
FROM public.tickers x
WHERE region = ANY(%s) AND (ticker, region) NOT IN (SELECT * FROM unnest(%s::text[], %s::text[]))
ORDER BY 1, 2

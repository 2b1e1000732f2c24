DELETE
FROM public.tickers x
USING unnest(%s::text[], %s::text[]) AS d(ticker, region)
WHERE x.ticker = d.ticker AND x.region = d.region

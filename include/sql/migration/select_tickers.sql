SELECT ticker, region FROM public.tickers

SELECT to_regclass('public.tickers')

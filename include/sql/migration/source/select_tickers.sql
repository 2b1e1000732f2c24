SELECT rowid, ticker, region FROM main.tickers

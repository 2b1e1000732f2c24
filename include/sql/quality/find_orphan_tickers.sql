-- referential: rows whose ticker is not in tickers (tables without a foreign key, e.g. the ohlcv_data
-- hypertable, or any table after a constraint was dropped). {match} is the (ticker, region) match of the
-- registry's ticker column, or the ticker alone for cross-region references (etf_holdings.stock_ticker).
SELECT {column_name} AS column_name, x.{ticker_column} AS ticker, x.region, count(*) AS rows,
       sum(count(*)) OVER () AS violation_count
FROM {table} AS x
WHERE {scope}
  AND NOT EXISTS (SELECT 1 FROM {tickers} AS k WHERE {match})
GROUP BY x.{ticker_column}, x.region
ORDER BY count(*) DESC, x.{ticker_column}
LIMIT %(sample_limit)s

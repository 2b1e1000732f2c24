-- referential: a row naming a ticker that is not in tickers: with its region where the row carries one, by
-- ticker alone where it does not (etf_holdings.stock_ticker); violation_count = rows x references broken.
--
-- One pass over the scope, every region at once: each row's references ({references}, from the registry's
-- ticker_references()) are looked up in tickers with a hash anti-join. Tables without a foreign key to
-- tickers (the ohlcv_data hypertable) are where such rows can exist.
WITH orphans AS (
    SELECT r.column_name, r.ticker, x.region, {result_region} AS result_region, count(*) AS rows
    FROM {table} AS x
    CROSS JOIN LATERAL (VALUES {references}) AS r(column_name, ticker, ticker_region, by_region)
    WHERE {scope}
      AND NOT EXISTS (SELECT 1 FROM {tickers} AS k
                      WHERE k.ticker = r.ticker AND (NOT r.by_region OR k.region = r.ticker_region))
    GROUP BY r.column_name, r.ticker, x.region
), ranked AS (
    SELECT orphans.*, sum(rows) OVER (PARTITION BY result_region) AS violation_count,
           row_number() OVER (PARTITION BY result_region ORDER BY rows DESC, ticker, column_name) AS sample_rank
    FROM orphans
)
SELECT column_name, ticker, region, rows, result_region, violation_count
FROM ranked
WHERE sample_rank <= %(sample_limit)s

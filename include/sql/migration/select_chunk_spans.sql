SELECT is_compressed, min(range_start)::date, max(range_end)::date
FROM timescaledb_information.chunks
WHERE hypertable_name = 'ohlcv_data'
GROUP BY is_compressed

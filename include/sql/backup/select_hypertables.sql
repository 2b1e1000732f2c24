-- TimescaleDB hypertables with their chunk counts (only run where the extension is installed).
SELECT hypertable_schema || '.' || hypertable_name AS hypertable, num_chunks, compression_enabled
FROM timescaledb_information.hypertables
ORDER BY 1

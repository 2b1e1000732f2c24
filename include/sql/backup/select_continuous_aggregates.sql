-- TimescaleDB continuous aggregates (views over a materialization hypertable): their rows are data too.
SELECT view_schema, view_name
FROM timescaledb_information.continuous_aggregates
ORDER BY 1, 2

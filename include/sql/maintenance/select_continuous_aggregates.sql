SELECT view_name FROM timescaledb_information.continuous_aggregates
WHERE view_schema = 'public' AND view_name = ANY(%(views)s)
ORDER BY view_name

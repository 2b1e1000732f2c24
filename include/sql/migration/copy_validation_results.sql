COPY ops.validation_results (run_id, check_name, table_name, region, status, expected, actual, details)
FROM STDIN

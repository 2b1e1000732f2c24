COPY {table} (run_id, table_name, region, source_rowid, reason, detail, raw_row, time_value)
FROM STDIN

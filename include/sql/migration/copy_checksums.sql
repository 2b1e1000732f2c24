COPY ops.migration_checksums (table_name, region, day, row_count, checksum, run_id, row_format)
FROM STDIN

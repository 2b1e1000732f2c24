CREATE TEMP TABLE {table} (run_id text, table_name text, region text, source_rowid bigint, reason text,
    detail text, raw_row jsonb, time_value text) ON COMMIT DROP

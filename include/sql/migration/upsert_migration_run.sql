INSERT INTO ops.migration_runs (run_id, table_name, region, status, source_rows, loaded_rows, rejected_rows,
    rejects_by_reason, seconds, rows_per_sec, params, finished_at)
VALUES (%s, %s, %s, 'success', %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (run_id, table_name, region)
DO UPDATE SET status = EXCLUDED.status, source_rows = EXCLUDED.source_rows,
    loaded_rows = EXCLUDED.loaded_rows, rejected_rows = EXCLUDED.rejected_rows,
    rejects_by_reason = EXCLUDED.rejects_by_reason, seconds = EXCLUDED.seconds,
    rows_per_sec = EXCLUDED.rows_per_sec, finished_at = now()

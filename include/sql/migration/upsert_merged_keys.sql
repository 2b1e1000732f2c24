INSERT INTO ops.merged_keys (table_name, key, run_id)
SELECT %s, ARRAY[{key}], %s
FROM {staged}
ON CONFLICT (table_name, key)
DO UPDATE SET run_id = EXCLUDED.run_id, written_at = now()

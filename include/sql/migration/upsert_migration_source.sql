INSERT INTO ops.migration_sources (run_id, source, size_bytes, modified_at, sha256, dry_run, target, mode)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (run_id)
DO UPDATE SET source = EXCLUDED.source, size_bytes = EXCLUDED.size_bytes, modified_at = EXCLUDED.modified_at,
    sha256 = EXCLUDED.sha256, dry_run = EXCLUDED.dry_run, target = EXCLUDED.target, mode = EXCLUDED.mode,
    recorded_at = now()

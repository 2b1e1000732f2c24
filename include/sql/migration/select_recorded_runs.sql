SELECT run_id, source, sha256, recorded_at FROM ops.migration_sources WHERE run_id = ANY(%s)

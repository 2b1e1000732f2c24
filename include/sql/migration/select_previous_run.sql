SELECT run_id, source, sha256, recorded_at
FROM ops.migration_sources
WHERE NOT dry_run AND run_id <> %s
ORDER BY recorded_at DESC
LIMIT 1

-- Pre-flight facts about the database to back up.
SELECT current_database() AS dbname,
       pg_database_size(current_database()) AS size_bytes,
       current_setting('server_version') AS server_version,
       (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS tsdb_version,
       to_regclass('ops.backups') IS NOT NULL AS has_journal

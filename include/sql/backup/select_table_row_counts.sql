-- The tables a backup's row counts cover: ordinary and partitioned tables (a partitioned parent counts
-- its partitions, a hypertable its chunks) and materialized views, outside the system and TimescaleDB
-- internal schemas. Counted one by one with count(*) (exact) by the caller.
SELECT n.nspname AS schema_name, c.relname AS table_name, c.relkind::text AS kind
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
  AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'timescaledb_information',
                        'timescaledb_experimental', 'toolkit_experimental')
  AND n.nspname NOT LIKE 'pg\_temp%'
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE '\_timescaledb%'
ORDER BY 1, 2

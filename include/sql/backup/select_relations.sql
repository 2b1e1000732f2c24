-- The relations a backup covers: ordinary and partitioned tables (a partitioned parent counts its
-- partitions, a hypertable its chunks) and materialized views with their population state, outside the
-- system and TimescaleDB internal schemas. The caller counts tables one by one with count(*) (exact) and
-- never counts a view (an unpopulated one cannot be read; a populated one is as old as its last refresh).
SELECT n.nspname AS schema_name, c.relname AS relation_name, c.relkind::text AS relkind, c.relispopulated
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

-- Indexes of the given relations with their access method, validity, pages and storage file (catalog only, no locks).
SELECT ci.oid::bigint AS indexrelid, n.nspname AS schema_name, ci.relname AS index_name,
       i.indrelid::bigint AS relid, am.amname AS access_method, i.indisvalid AS is_valid,
       ci.relpages::bigint AS relpages,
       ci.relfilenode::bigint AS relfilenode
FROM pg_index i
JOIN pg_class ci ON ci.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = ci.relnamespace
JOIN pg_am am ON am.oid = ci.relam
WHERE i.indrelid = ANY(%(relids)s::oid[])
ORDER BY n.nspname, ci.relname

-- Invalid indexes on the given relations: leftovers of a failed CREATE/REINDEX ... CONCURRENTLY.
SELECT ci.oid::bigint AS indexrelid, n.nspname AS schema_name, ci.relname AS index_name,
       i.indrelid::bigint AS relid, ct.relname AS table_relation,
       ci.relpages::bigint * current_setting('block_size')::bigint AS size_bytes
FROM pg_index i
JOIN pg_class ci ON ci.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = ci.relnamespace
JOIN pg_class ct ON ct.oid = i.indrelid
WHERE NOT i.indisvalid AND i.indrelid = ANY(%(relids)s::oid[])
ORDER BY n.nspname, ci.relname

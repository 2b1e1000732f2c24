-- One index by its qualified name: oid, access method, size from the catalog and storage file (no lock).
SELECT c.oid::bigint AS indexrelid, am.amname AS access_method,
       c.relpages::bigint * current_setting('block_size')::bigint AS catalog_bytes, c.relfilenode::bigint AS relfilenode
FROM pg_class c JOIN pg_am am ON am.oid = c.relam
WHERE c.oid = to_regclass(%(index)s) AND c.relkind = 'i'

-- B-tree shape from pgstatindex (reads the whole index under an AccessShareLock).
SELECT s.index_size::bigint AS size_bytes, s.leaf_pages::bigint AS leaf_pages,
       s.empty_pages::bigint AS empty_pages, s.deleted_pages::bigint AS deleted_pages,
       s.avg_leaf_density::float AS avg_leaf_density,
       coalesce(substring(array_to_string(c.reloptions, ',') FROM 'fillfactor=([0-9]+)')::int, 90) AS fillfactor
FROM pgstatindex(%(indexrelid)s::oid::regclass) s
JOIN pg_class c ON c.oid = %(indexrelid)s::oid

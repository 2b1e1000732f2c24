-- Size and storage file of one index after a rebuild (pg_relation_size takes an AccessShareLock).
SELECT pg_relation_size(c.oid)::bigint AS size_bytes, c.relfilenode::bigint AS relfilenode
FROM pg_class c WHERE c.oid = %(indexrelid)s::oid

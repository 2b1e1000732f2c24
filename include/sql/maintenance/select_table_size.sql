-- Bytes of one table with its indexes and TOAST, its partitions included (plain partitioned parents
-- hold no data themselves). Each relation is opened with an AccessShareLock.
WITH RECURSIVE tree AS (
    SELECT %(relid)s::oid AS oid
    UNION ALL
    SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON t.oid = i.inhparent
)
SELECT coalesce(sum(pg_total_relation_size(t.oid)), 0)::bigint AS total_bytes,
       count(*)::int - 1 AS children
FROM tree t

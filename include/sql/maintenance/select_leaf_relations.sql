-- The relations that hold the rows of the given registry tables: the table itself when it has no
-- children, else its partitions (plain mode) or chunks (TimescaleDB), recursively. Catalog only: no lock
-- is taken, so a locked table cannot stall the listing.
WITH RECURSIVE tree AS (
    SELECT c.oid, c.oid AS root, 0 AS depth
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relname = ANY(%(tables)s)
    UNION ALL
    SELECT i.inhrelid, t.root, t.depth + 1
    FROM pg_inherits i
    JOIN tree t ON t.oid = i.inhparent
)
SELECT r.relname AS table_name, n.nspname AS schema_name, c.relname AS relation, c.oid::bigint AS relid,
       t.depth > 0 AS is_child,
       CASE WHEN t.depth = 0 THEN 'table' WHEN t.root = ANY(%(hypertables)s::oid[]) THEN 'chunk'
            ELSE 'partition' END AS kind
FROM tree t
JOIN pg_class c ON c.oid = t.oid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class r ON r.oid = t.root
WHERE c.relkind = 'r'
  AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = t.oid)
  AND NOT (t.depth = 0 AND t.oid = ANY(%(hypertables)s::oid[]))
ORDER BY r.relname, n.nspname, c.relname

-- Names of the partitions of one plain-mode partitioned table (catalog only).
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass(%(table)s)

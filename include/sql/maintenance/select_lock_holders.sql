-- Other sessions holding locks on a registry table, on its partitions or chunks or on their indexes: who
-- kept a maintenance statement from its lock. Strongest lock first, then the oldest transaction; the pid,
-- application_name (the backend type where there is none) and state only, never the query text.
WITH RECURSIVE family(oid) AS (
    SELECT to_regclass(format('public.%%I', %(table)s::text))::oid
    UNION ALL
    SELECT inh.inhrelid FROM pg_inherits inh JOIN family f ON f.oid = inh.inhparent
), modes(names) AS (
    SELECT ARRAY['AccessShareLock', 'RowShareLock', 'RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareLock',
                 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock']
)
SELECT a.pid, coalesce(nullif(a.application_name, ''), a.backend_type) AS application_name,
       coalesce(a.state, 'unknown') AS state, m.names[max(array_position(m.names, l.mode))] AS mode
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
CROSS JOIN modes m
WHERE l.granted AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND (l.relation IN (SELECT oid FROM family)
       OR l.relation IN (SELECT x.indexrelid FROM pg_index x JOIN family f ON f.oid = x.indrelid))
GROUP BY a.pid, a.application_name, a.backend_type, a.state, a.xact_start, m.names
ORDER BY max(array_position(m.names, l.mode)) DESC, a.xact_start NULLS LAST, a.pid
LIMIT 3

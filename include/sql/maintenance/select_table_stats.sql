-- Tuple statistics of the given relations (cumulative statistics: no lock on the tables).
SELECT s.relid::bigint AS relid, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze, c.relpages::bigint AS relpages
FROM pg_stat_all_tables s
JOIN pg_class c ON c.oid = s.relid
WHERE s.relid = ANY(%(relids)s::oid[])

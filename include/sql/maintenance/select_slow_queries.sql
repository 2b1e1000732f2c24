-- Statements slower than the threshold on average (pg_stat_statements normalises constants to $n).
SELECT s.queryid::text AS queryid, left(regexp_replace(s.query, '\s+', ' ', 'g'), 160) AS query,
       s.calls::bigint AS calls, round(s.mean_exec_time::numeric, 1)::float AS mean_ms,
       round(s.max_exec_time::numeric, 1)::float AS max_ms, round(s.total_exec_time::numeric, 1)::float AS total_ms,
       s.rows::bigint AS rows
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.mean_exec_time > %(min_ms)s
ORDER BY s.mean_exec_time DESC
LIMIT %(top_n)s

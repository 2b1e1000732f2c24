-- Table bloat from pgstattuple_approx: exact dead tuples, free space estimated from the visibility and
-- free space maps (far cheaper than a full pgstattuple scan on a large table).
SELECT pg_relation_size(%(relid)s::oid::regclass) AS size_bytes,
       s.dead_tuple_percent::float AS dead_pct,
       s.approx_free_percent::float AS free_pct,
       s.approx_tuple_count::bigint AS live_tuples
FROM pgstattuple_approx(%(relid)s::oid::regclass) s

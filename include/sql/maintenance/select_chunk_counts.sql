-- Chunks per hypertable, compressed and not (catalog only).
SELECT c.hypertable_name, count(*)::int AS chunks,
       count(*) FILTER (WHERE c.is_compressed)::int AS compressed,
       count(*) FILTER (WHERE NOT c.is_compressed)::int AS uncompressed
FROM timescaledb_information.chunks c
WHERE c.hypertable_schema = 'public' AND c.hypertable_name = ANY(%(tables)s)
GROUP BY c.hypertable_name
ORDER BY c.hypertable_name

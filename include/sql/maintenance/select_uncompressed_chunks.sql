-- Chunks of one hypertable whose whole range is older than the compression policy's interval and that
-- are not compressed yet (timescaledb_information.chunks: catalog only).
SELECT format('%%I.%%I', c.chunk_schema, c.chunk_name) AS chunk, c.chunk_schema, c.chunk_name,
       c.range_start, c.range_end
FROM timescaledb_information.chunks c
WHERE c.hypertable_schema = 'public' AND c.hypertable_name = %(hypertable)s
  AND NOT c.is_compressed
  AND c.range_end <= now() - %(after)s::interval
ORDER BY c.range_start

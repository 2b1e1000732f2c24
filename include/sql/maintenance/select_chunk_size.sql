-- Bytes of one chunk: its own heap, indexes and TOAST plus its compressed data (chunks_detailed_size).
SELECT coalesce(sum(s.total_bytes), 0)::bigint AS total_bytes
FROM chunks_detailed_size(%(hypertable)s::regclass) s
WHERE s.chunk_schema = %(chunk_schema)s AND s.chunk_name = %(chunk_name)s

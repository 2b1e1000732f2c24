-- Compression of one hypertable (TimescaleDB before 2.18).
SELECT coalesce(sum(s.before_compression_total_bytes), 0)::bigint AS before_bytes,
       coalesce(sum(s.after_compression_total_bytes), 0)::bigint AS after_bytes,
       coalesce(sum(s.number_compressed_chunks), 0)::int AS compressed_chunks
FROM hypertable_compression_stats(%(hypertable)s::regclass) s

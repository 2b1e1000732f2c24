-- Bytes of one hypertable, chunks and compressed data included.
SELECT coalesce(hypertable_size(%(relid)s::oid::regclass), 0)::bigint AS total_bytes,
       (SELECT count(*) FROM show_chunks(%(relid)s::oid::regclass))::int AS children

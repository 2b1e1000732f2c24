-- The last size measured of each object by an earlier run: growth is measured against it.
SELECT DISTINCT ON (object_name) object_name, (after ->> 'total_bytes')::bigint AS total_bytes, logged_at, run_id
FROM ops.maintenance_log
WHERE action = 'size' AND status = 'measured' AND run_id <> %(run_id)s AND after ? 'total_bytes'
ORDER BY object_name, logged_at DESC, id DESC

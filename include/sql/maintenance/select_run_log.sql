SELECT id, action, object_name, status, before, after, duration_s, message, logged_at
FROM ops.maintenance_log
WHERE run_id = %(run_id)s
ORDER BY id

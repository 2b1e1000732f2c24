INSERT INTO ops.maintenance_log (run_id, action, object_name, status, before, after, duration_s, message)
VALUES (%(run_id)s, %(action)s, %(object_name)s, %(status)s, %(before)s, %(after)s, %(duration_s)s, %(message)s)

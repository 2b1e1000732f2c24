SELECT id FROM ops.backups WHERE run_id = %(run_id)s AND s3_key = %(s3_key)s ORDER BY id DESC LIMIT 1

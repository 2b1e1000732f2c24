-- One ops.backups row per backup attempt of a run and key; a retried task reuses its row.
INSERT INTO ops.backups (run_id, status, s3_key, local_path, pg_version, tsdb_version)
VALUES (%(run_id)s, 'running', %(s3_key)s, %(local_path)s, %(pg_version)s, %(tsdb_version)s)
RETURNING id

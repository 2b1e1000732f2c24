-- Retention removed these backups: their rows stay, marked deleted.
UPDATE ops.backups SET status = 'deleted', deleted_at = now()
WHERE s3_key = ANY(%(s3_keys)s) AND status <> 'deleted'

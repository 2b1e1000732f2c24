-- Move a backup row on: running -> uploaded -> verified, or failed (with the reason). NULL keeps a value.
UPDATE ops.backups SET
    status      = %(status)s,
    size_bytes  = coalesce(%(size_bytes)s, size_bytes),
    sha256      = coalesce(%(sha256)s, sha256),
    duration_s  = coalesce(%(duration_s)s, duration_s),
    manifest    = coalesce(%(manifest)s::jsonb, manifest),
    error       = CASE WHEN %(status)s = 'failed' THEN %(error)s ELSE NULL END,
    verified    = verified OR %(status)s = 'verified',
    verified_at = CASE WHEN %(status)s = 'verified' THEN now() ELSE verified_at END,
    finished_at = CASE WHEN %(status)s IN ('uploaded', 'verified', 'failed') THEN now() ELSE finished_at END
WHERE id = %(id)s

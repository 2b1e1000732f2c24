-- Forget this session's cached statistics snapshot, so the next read sees what VACUUM just reported.
SELECT pg_stat_clear_snapshot()

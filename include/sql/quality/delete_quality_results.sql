-- A re-run of a check task replaces its own results of the run (idempotent).
DELETE FROM ops.quality_results WHERE run_id = %(run_id)s AND check_name = %(check_name)s

-- The results of one run, in the order the summary prints them.
SELECT check_name, region, table_name, severity, violation_count, threshold, passed, sample_rows, details
FROM ops.quality_results
WHERE run_id = %(run_id)s
ORDER BY passed, severity, check_name, table_name, region

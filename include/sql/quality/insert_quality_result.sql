INSERT INTO ops.quality_results
    (run_id, check_name, region, table_name, severity, violation_count, threshold, passed, sample_rows, details)
VALUES
    (%(run_id)s, %(check_name)s, %(region)s, %(table_name)s, %(severity)s, %(violation_count)s,
     %(threshold)s, %(passed)s, %(sample_rows)s, %(details)s)

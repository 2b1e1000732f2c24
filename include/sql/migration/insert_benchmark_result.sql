INSERT INTO ops.benchmark_results (run_id, query_name, runs, mean_ms, median_ms, p95_ms, p99_ms, min_ms,
    max_ms, target_ms, acceptable_ms, critical_ms, status, details)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)

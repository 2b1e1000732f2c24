-- TimescaleDB's own background jobs (policies) whose last run failed or that never ran.
SELECT j.job_id, j.proc_name, coalesce(j.hypertable_name, '') AS hypertable_name, j.scheduled,
       s.last_run_status, s.last_run_started_at, coalesce(s.total_runs, 0)::bigint AS total_runs,
       coalesce(s.total_failures, 0)::bigint AS total_failures, s.next_start,
       CASE WHEN coalesce(s.total_runs, 0) = 0 THEN 'never_ran' ELSE 'failed' END AS problem
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
WHERE j.job_id >= 1000  -- below 1000: the extension's internal jobs (telemetry, job history)
  AND (coalesce(s.total_runs, 0) = 0 OR s.last_run_status = 'Failed')
ORDER BY j.job_id

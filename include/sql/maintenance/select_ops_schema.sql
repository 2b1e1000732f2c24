SELECT to_regclass('ops.maintenance_log') IS NOT NULL

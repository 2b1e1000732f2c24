SELECT to_regclass('ops.migration_sources') IS NOT NULL

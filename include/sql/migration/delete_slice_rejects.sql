DELETE FROM ops.migration_rejects WHERE {slices}

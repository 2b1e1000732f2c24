DELETE FROM ops.migration_checksums WHERE {slices}

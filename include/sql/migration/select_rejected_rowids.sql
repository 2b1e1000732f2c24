SELECT source_rowid FROM ops.migration_rejects WHERE table_name = %s AND source_rowid = ANY(%s)

SELECT current_database() AS database_name, pg_database_size(current_database())::bigint AS total_bytes

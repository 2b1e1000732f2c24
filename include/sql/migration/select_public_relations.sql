SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace

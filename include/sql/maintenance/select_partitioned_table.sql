-- Whether a public table is a natively partitioned parent (relkind 'p').
SELECT c.relkind = 'p' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname = %(table)s

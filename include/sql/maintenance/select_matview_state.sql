-- Whether a materialized view exists and holds data (REFRESH ... CONCURRENTLY needs a populated view).
SELECT c.relispopulated FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname = %(view)s AND c.relkind = 'm'

SELECT t.relname, count(*)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relnamespace = 'public'::regnamespace
  AND (NOT x.indisvalid
       OR (t.relkind = 'p'
           AND (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = i.oid)
               < (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = t.oid)))
GROUP BY 1

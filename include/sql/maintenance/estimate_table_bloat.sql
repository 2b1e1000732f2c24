-- The standard catalog estimate of table bloat (no pgstattuple): the pages the live rows need, from
-- pg_stats' average column widths and null fractions, against the pages the table has. Catalog only.
WITH t AS (
    SELECT c.oid, c.relpages::bigint AS relpages, greatest(c.reltuples, 0)::float AS reltuples,
           current_setting('block_size')::int AS bs,
           coalesce(substring(array_to_string(c.reloptions, ',') FROM 'fillfactor=([0-9]+)')::int, 100) AS fillfactor,
           n.nspname, c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = %(relid)s::oid
), w AS (
    SELECT t.oid, sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 8))::float AS datawidth,
           count(a.attnum) AS ncols
    FROM t
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_stats s ON s.schemaname = t.nspname AND s.tablename = t.relname AND s.attname = a.attname
    GROUP BY t.oid
), est AS (
    SELECT t.relpages, t.reltuples, t.bs,
           -- tuple header (23 bytes + null bitmap, MAXALIGNed) + data (MAXALIGNed) + line pointer (4)
           (ceil((23 + ceil(w.ncols / 8.0)) / 8.0) * 8 + ceil(w.datawidth / 8.0) * 8 + 4)::float AS tuple_bytes,
           t.fillfactor
    FROM t JOIN w ON w.oid = t.oid
)
SELECT relpages * bs AS size_bytes, reltuples::bigint AS live_tuples,
       ceil(reltuples * tuple_bytes / ((bs - 24) * fillfactor / 100.0))::bigint AS expected_pages,
       relpages
FROM est

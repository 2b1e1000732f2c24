-- The standard catalog estimate of B-tree bloat (no pgstattuple): the leaf pages the index's entries need,
-- from pg_stats' widths of the indexed columns, against the pages the index has. Catalog only.
WITH i AS (
    SELECT ci.oid, ci.relpages::bigint AS relpages, greatest(ci.reltuples, 0)::float AS reltuples,
           current_setting('block_size')::int AS bs,
           coalesce(substring(array_to_string(ci.reloptions, ',') FROM 'fillfactor=([0-9]+)')::int, 90) AS fillfactor,
           nt.nspname AS table_schema, ct.relname AS table_name, ci.relname AS index_name, ni.nspname AS index_schema
    FROM pg_index x
    JOIN pg_class ci ON ci.oid = x.indexrelid
    JOIN pg_namespace ni ON ni.oid = ci.relnamespace
    JOIN pg_class ct ON ct.oid = x.indrelid
    JOIN pg_namespace nt ON nt.oid = ct.relnamespace
    WHERE x.indexrelid = %(indexrelid)s::oid
), w AS (
    SELECT i.oid, sum((1 - coalesce(st.null_frac, si.null_frac, 0)) * coalesce(st.avg_width, si.avg_width, 8))::float
               AS datawidth
    FROM i
    JOIN pg_attribute a ON a.attrelid = i.oid AND a.attnum > 0
    LEFT JOIN pg_stats st ON st.schemaname = i.table_schema AND st.tablename = i.table_name AND st.attname = a.attname
    LEFT JOIN pg_stats si ON si.schemaname = i.index_schema AND si.tablename = i.index_name AND si.attname = a.attname
    GROUP BY i.oid
)
SELECT i.relpages * i.bs AS size_bytes, i.relpages,
       -- index tuple header (8) + MAXALIGNed data + line pointer (4); page header 24 + btree special 16; + meta
       (ceil(i.reltuples * (12 + ceil(w.datawidth / 8.0) * 8) / ((i.bs - 40) * i.fillfactor / 100.0)) + 1)::bigint
           AS expected_pages
FROM i JOIN w ON w.oid = i.oid

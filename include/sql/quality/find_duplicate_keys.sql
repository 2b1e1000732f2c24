-- duplicates: two or more rows of a table with the same natural key once spelling is normalised (ticker
-- case and surrounding spaces, timeframe '1d'/'daily'/'d' = 'D', ...); violation_count = the surplus rows.
--
-- Every row is grouped by its normalised key only where the table has no valid unique index on (a subset of)
-- its key. Where it has one, two rows can share a key only by spelling it differently, so one pass picks the
-- rows whose key is not spelled canonically ({odd_spelling}: normally none, the loader writes canonical
-- spellings) and their canonically spelled twins are found through the key's index. {normalized_key},
-- {odd_spelling}, {spelling} and {group_key} are built from the registry's key columns.
WITH unique_key AS (
    SELECT EXISTS (
        SELECT 1 FROM pg_index AS i
        WHERE i.indrelid = {relation}::regclass AND i.indisunique AND i.indisvalid
          AND i.indpred IS NULL AND i.indexprs IS NULL
          AND NOT EXISTS (SELECT 1 FROM pg_attribute AS a
                          WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                            AND a.attname::text <> ALL ({key_names}))
    ) AS enforced
), odd AS (
    SELECT {normalized_key}, {spelling} AS spelling
    FROM {table}
    WHERE {scope} AND ({odd_spelling})
), keys AS (
    SELECT odd.*
    FROM odd
    UNION ALL
    SELECT twin.*
    FROM (SELECT DISTINCT {group_key} FROM odd) AS o
    -- OFFSET 0 keeps this an index lookup per key instead of a join that would read the whole scope again
    CROSS JOIN LATERAL (
        SELECT {normalized_key}, {spelling} AS spelling
        FROM {table}
        WHERE {twin_match} AND {scope} AND NOT ({odd_spelling})
        OFFSET 0
    ) AS twin
    WHERE (SELECT enforced FROM unique_key)
    UNION ALL
    SELECT {normalized_key}, {spelling} AS spelling
    FROM {table}
    WHERE {scope} AND NOT ({odd_spelling}) AND NOT (SELECT enforced FROM unique_key)
), copies AS (
    SELECT {group_key}, count(*) AS copies, jsonb_agg(spelling ORDER BY spelling::text) AS spellings
    FROM keys
    GROUP BY {group_key}
    HAVING count(*) > 1
), ranked AS (
    SELECT copies.*, {result_region} AS result_region,
           sum(copies - 1) OVER (PARTITION BY {result_region}) AS violation_count,
           row_number() OVER (PARTITION BY {result_region} ORDER BY copies DESC, {group_key}) AS sample_rank
    FROM copies
)
SELECT {group_key}, copies, spellings, result_region, violation_count
FROM ranked
WHERE sample_rank <= %(sample_limit)s

-- duplicates: rows sharing a table's natural key once spelling is normalised (ticker case and
-- whitespace, timeframe '1d'/'daily'/'d' = 'D', ...): exact duplicates where the key is not enforced, and
-- near-duplicates that a unique constraint cannot see. {normalized_key} and {spelling} are built from
-- the registry's key columns. violation_count = the surplus rows (copies beyond the first).
WITH normalized AS (
    SELECT {normalized_key}, {spelling} AS spelling
    FROM {table}
    WHERE {scope}
)
SELECT {key_names}, count(*) AS copies, jsonb_agg(spelling ORDER BY spelling::text) AS spellings,
       sum(count(*) - 1) OVER () AS violation_count
FROM normalized
GROUP BY {key_names}
HAVING count(*) > 1
ORDER BY count(*) DESC, {key_names}
LIMIT %(sample_limit)s

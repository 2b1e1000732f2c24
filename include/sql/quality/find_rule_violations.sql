-- null_required, ohlcv_rules and row_rules: a row breaking one of the rules the registry declares for its table,
-- the rules the loader quarantines a source row for. null_required: a NULL in a column the registry marks
-- required (the schema's NOT NULL columns); ohlcv_rules (ohlcv_data) and row_rules (every other table): a row
-- for which a rule of Table.rules (the schema's CHECK constraints) is false; NULL passes, as in a CHECK.
--
-- One pass over the scope, every region at once, every rule of the table in it. Where every rule is a NOT NULL
-- column or a validated CHECK constraint, the planner proves from the constraints that no row qualifies and
-- reads nothing; a rule added NOT VALID over old rows, or a dropped constraint, makes it read. {any_broken},
-- {broken_rules} (each broken rule in words, or the NULL column), {broken_names} and the sample's columns are
-- built from the registry; breakdown counts the rows per rule or column.
WITH broken AS MATERIALIZED (
    SELECT {sample_columns}, {broken_rules} AS {broken_column}, {broken_names} AS broken_names,
           {result_region} AS result_region
    FROM {table}
    WHERE {scope} AND ({any_broken})
), per_rule AS (
    SELECT result_region, jsonb_object_agg(counted, n) AS breakdown
    FROM (SELECT result_region, counted, count(*) AS n
          FROM broken CROSS JOIN LATERAL unnest(broken_names) AS counted
          GROUP BY result_region, counted) AS c
    GROUP BY result_region
), ranked AS (
    SELECT broken.*, count(*) OVER (PARTITION BY result_region) AS violation_count,
           row_number() OVER (PARTITION BY result_region ORDER BY {sample_order}) AS sample_rank
    FROM broken
)
SELECT {ranked_sample_columns}, ranked.{broken_column}, ranked.result_region, ranked.violation_count, p.breakdown
FROM ranked
JOIN per_rule AS p USING (result_region)
WHERE sample_rank <= %(sample_limit)s

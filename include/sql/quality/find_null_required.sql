-- null_required: rows with a NULL in a column the registry marks required. {any_null} and
-- {null_columns} are built from the registry's required columns.
SELECT {key_columns}, {null_columns} AS null_columns, count(*) OVER () AS violation_count
FROM {table}
WHERE {scope} AND ({any_null})
ORDER BY {key_order}
LIMIT %(sample_limit)s

INSERT INTO {table} ({columns})
SELECT {columns}
FROM _stage
ON CONFLICT ({key})
DO UPDATE SET {updates}

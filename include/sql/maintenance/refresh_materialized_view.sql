-- Only for a view never populated (CONCURRENTLY refuses those).
REFRESH MATERIALIZED VIEW {view}

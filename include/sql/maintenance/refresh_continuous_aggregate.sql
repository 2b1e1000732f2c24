-- The whole range: only buckets invalidated since the last refresh are recomputed.
CALL refresh_continuous_aggregate(%(view)s::regclass, NULL, NULL)

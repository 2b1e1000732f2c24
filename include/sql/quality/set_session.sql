-- The checks' session settings.
-- No JIT: the statements run over every chunk or partition of a table, and compiling their expressions chunk by
-- chunk costs more than it saves (0.4 s and more against 30-day windows that take less).
-- work_mem: the per-ticker aggregates (one row per ticker) and the window's sorts stay in memory.
-- TimescaleDB's per-chunk partial aggregation runs in one process; PostgreSQL's own parallel aggregation uses
-- the parallel workers (the per-ticker statistics of the whole history in half the time).
SET jit = off;
SET work_mem = '64MB';
SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'timescaledb.enable_chunkwise_aggregation'

-- The monitoring role: what postgres_exporter and Grafana log in as. Read-only by construction:
--   * member of pg_monitor (statistics views, pg_stat_statements text, size functions),
--   * member of quant_readonly (SELECT on public and ops, granted by include/sql/schema/create_roles.sql),
--   * default_transaction_read_only, so even a wider grant later cannot make it write,
--   * a statement_timeout, so a dashboard or a scrape never holds a backend for long.
--
-- Run with psql by the compose service `monitoring-roles` (and by the tests) against the quant
-- database, before or after the migration applied the schema; idempotent. The password comes from the
-- environment variable QUANT_MONITOR_PASSWORD (psql's \getenv), never from this file or a command line.
\set ON_ERROR_STOP on
\getenv monitor_password QUANT_MONITOR_PASSWORD

-- Same definition as include/sql/schema/create_roles.sql, so whichever runs first creates it.
SELECT 'CREATE ROLE quant_readonly NOLOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'quant_readonly') \gexec
SELECT 'CREATE ROLE quant_monitor'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'quant_monitor') \gexec

ALTER ROLE quant_monitor WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 10
    PASSWORD :'monitor_password';
GRANT pg_monitor, quant_readonly TO quant_monitor;
ALTER ROLE quant_monitor SET default_transaction_read_only = on;
ALTER ROLE quant_monitor SET statement_timeout = '15s';
ALTER ROLE quant_monitor SET lock_timeout = '2s';

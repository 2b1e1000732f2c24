-- Roles from the seeds: the application role and a read-only reporting role. Created NOLOGIN and
-- idempotently; passwords are never in code: apply.py sets them from the environment when given.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'quant_user') THEN
        CREATE ROLE quant_user NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'quant_readonly') THEN
        CREATE ROLE quant_readonly NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public, ops TO quant_user, quant_readonly;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO quant_user;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO quant_user;
GRANT SELECT ON ALL TABLES IN SCHEMA public, ops TO quant_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO quant_user;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO quant_user;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO quant_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops GRANT SELECT ON TABLES TO quant_readonly;

-- Hypertables of the public schema with their oids (TimescaleDB mode only).
SELECT h.hypertable_name, (quote_ident(h.hypertable_schema) || '.' || quote_ident(h.hypertable_name))::regclass::oid::bigint AS relid,
       h.compression_enabled
FROM timescaledb_information.hypertables h
WHERE h.hypertable_schema = 'public'

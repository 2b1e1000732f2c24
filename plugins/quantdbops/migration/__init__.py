"""The SQLite -> PostgreSQL migration: source checks, the streaming load, validation, query SLOs."""

"""quant-db-ops: shared code of the DAG bundle.

Modules are small and have one job each:

- ``registry``: the declarative description of every target table (read by everything else);
- ``schema``: renders and applies the target schema in TimescaleDB or plain-PostgreSQL mode;
- ``io``: connections to PostgreSQL, SQLite and S3 (all I/O lives there).

The sample-database generator is dev-side code: ``scripts/sample``, never shipped with the bundle.
"""

from __future__ import annotations

REGIONS: tuple[str, ...] = ("KR", "US", "CN", "HK", "JP", "VN")
PLATFORM_TZ = "Asia/Seoul"

# Connection ids every DAG reads through Airflow's normal mechanisms.
CONN_POSTGRES = "quant_postgres"
CONN_S3 = "quant_s3"
CONN_SQLITE = "spock_sqlite"
HEAVY_DB_POOL = "quant_db_heavy"

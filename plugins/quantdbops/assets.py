"""Airflow Assets the DAGs exchange: the migration updates MIGRATED_DATA; data quality listens to it."""

from __future__ import annotations

from airflow.sdk import Asset

MIGRATED_DATA = Asset(name="quant_platform_market_data", uri="quant-db-ops://quant_platform/market_data",
                      group="quant-db-ops")

"""Where the bundle's SQL files live, and reading them.

``include/sql`` sits beside ``plugins/`` in the repository and in the Airflow image alike
(``/opt/airflow/include``), so the path is found from this file, never from the working directory.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

SQL_ROOT = Path(__file__).resolve().parents[2] / "include" / "sql"


@cache
def read_sql(relative: str) -> str:
    """The text of ``include/sql/<relative>``."""
    path = SQL_ROOT / relative
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {path} is missing from the bundle")
    return path.read_text(encoding="utf-8")

"""Where the source SQLite file is: the ``spock_sqlite`` connection (its host, or schema for URIs)."""

from __future__ import annotations

from quantdbops import CONN_SQLITE


def sqlite_path(conn_id: str = CONN_SQLITE) -> str:
    """The file path the connection names (``sqlite:////abs/path`` URIs put it in schema)."""
    from airflow.sdk import BaseHook  # heavy import: only when a task runs

    c = BaseHook.get_connection(conn_id)
    path = c.host or c.schema  # JSON/UI connections use host; sqlite:////abs/path URIs land in schema
    if not path:
        raise ValueError(f"connection {conn_id} names no file: set its host to the SQLite file's path")
    return path

"""What a backup holds, and whether a restored database holds the same.

The manifest is written beside every dump (JSON): checksum, size, versions, per-table row counts counted in
the very snapshot ``pg_dump`` read, hypertables, duration, and (after the verification restore) the
verification result. A restore is compared to it table by table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from quantdbops.sqlfiles import read_sql

MANIFEST_VERSION = 1


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Exact rows of every user table, materialized view and continuous aggregate (``schema.name``), in the
    connection's current snapshot."""
    out: dict[str, int] = {}
    relations = [(r[0], r[1]) for r in conn.execute(read_sql("backup/select_table_row_counts.sql")).fetchall()]
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        relations += [tuple(r) for r in conn.execute(read_sql("backup/select_continuous_aggregates.sql"))]
    for schema, name in relations:
        out[f"{schema}.{name}"] = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))).fetchone()[0]
    return out


def hypertables(conn: psycopg.Connection) -> list[str]:
    """``schema.table`` of every hypertable ([] without TimescaleDB)."""
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        return []
    return [r[0] for r in conn.execute(read_sql("backup/select_hypertables.sql")).fetchall()]


def invalid_indexes(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute(read_sql("backup/select_invalid_indexes.sql")).fetchall()]


def build(*, name: str, dbname: str, s3_key: str, bucket: str, size_bytes: int, sha256: str,
          pg_version: str, tsdb_version: str | None, pg_dump_major: int, counts: dict[str, int],
          hypertable_names: list[str], dump_seconds: float, taken_at: str, run_id: str) -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION, "name": name, "database": dbname, "format": "custom",
        "s3_bucket": bucket, "s3_key": s3_key, "size_bytes": size_bytes, "sha256": sha256,
        "pg_version": pg_version, "tsdb_version": tsdb_version, "pg_dump_major": pg_dump_major,
        "taken_at": taken_at, "run_id": run_id, "dump_seconds": round(dump_seconds, 3),
        "mb_per_s": round(size_bytes / 1e6 / dump_seconds, 2) if dump_seconds > 0 else None,
        "row_counts": counts, "total_rows": sum(counts.values()), "hypertables": hypertable_names,
        "verified": False, "verification": None,
    }


def dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, default=str)


def write(manifest: dict[str, Any], path: str | Path) -> Path:
    """Write atomically (temp file + rename): a manifest on disk is always whole."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(manifest), encoding="utf-8")
    tmp.replace(path)
    return path


def read(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@dataclass
class Comparison:
    """A restored database against its manifest: every difference, not just the first."""

    tables: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def compare(manifest: dict[str, Any], counts: dict[str, int], *, invalid: list[str] | None = None,
            restored_hypertables: list[str] | None = None) -> Comparison:
    """Row counts per table must be equal; no invalid index; every hypertable of the dump is one again."""
    expected: dict[str, int] = manifest["row_counts"]
    result = Comparison(tables=len(expected), rows=sum(counts.get(t, 0) for t in expected))
    for t, n in sorted(expected.items()):
        if t not in counts:
            result.problems.append(f"{t}: missing after restore (manifest: {n:,} rows)")
        elif counts[t] != n:
            result.problems.append(f"{t}: {counts[t]:,} rows after restore, manifest says {n:,}")
    for t in sorted(set(counts) - set(expected)):
        result.problems.append(f"{t}: present after restore but not in the manifest")
    for idx in invalid or []:
        result.problems.append(f"index {idx} is invalid after restore")
    if restored_hypertables is not None:
        for h in sorted(set(manifest.get("hypertables") or []) - set(restored_hypertables)):
            result.problems.append(f"{h} was a hypertable in the dump but is not one after restore")
    return result

"""What a backup holds, and whether a restored database holds the same.

The manifest is written beside every dump (JSON): checksum, size, versions, every relation the dump covers
with its kind, the exact row counts of the tables counted in the very snapshot ``pg_dump`` read,
hypertables, duration, and (after the verification restore) the verification result.

A restore is compared to it relation by relation, by what a restore must reproduce: base tables (and
partitioned parents) and hypertables by exact row count; materialized views and continuous aggregates by
presence and, for a materialized view, population state, never by rows: a view's rows are as old as its last
refresh, and ``pg_restore`` refreshes every view that was populated, so its rows after a restore are those of
the dump's tables, not those the view held at dump time.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from quantdbops.sqlfiles import read_sql

# 2: "relations" (kind per relation, population state of materialized views); "row_counts" holds tables only.
# 1: "row_counts" of tables and views alike, no kinds.
MANIFEST_VERSION = 2

TABLE = "base table"  # ordinary table or partitioned parent (its partitions' rows)
HYPERTABLE = "hypertable"
MATVIEW = "materialized view"
CAGG = "continuous aggregate"
UNKNOWN = "kind not recorded"  # a version 1 manifest's relation that is gone after the restore
COUNTED = frozenset({TABLE, HYPERTABLE})


@dataclass(frozen=True)
class Relation:
    """One relation of a backup and what a restore must reproduce of it: ``rows`` (exact) of a base table or
    hypertable, ``populated`` of a materialized view; a continuous aggregate only has to exist."""

    kind: str | None
    rows: int | None = None
    populated: bool | None = None


def has_timescaledb(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None


def hypertables(conn: psycopg.Connection) -> list[str]:
    """``schema.table`` of every hypertable ([] without TimescaleDB)."""
    if not has_timescaledb(conn):
        return []
    return [r[0] for r in conn.execute(read_sql("backup/select_hypertables.sql")).fetchall()]


def inventory(conn: psycopg.Connection) -> dict[str, Relation]:
    """Every user table, hypertable, materialized view and continuous aggregate (``schema.name``) in the
    connection's current snapshot: exact rows of the tables, population state of the materialized views."""
    tsdb = has_timescaledb(conn)
    hyper = set(hypertables(conn)) if tsdb else set()
    out: dict[str, Relation] = {}
    for schema, name, relkind, populated in conn.execute(read_sql("backup/select_relations.sql")).fetchall():
        key = f"{schema}.{name}"
        if relkind == "m":
            out[key] = Relation(MATVIEW, populated=bool(populated))
            continue
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))).fetchone()[0]
        out[key] = Relation(HYPERTABLE if key in hyper else TABLE, rows=rows)
    if tsdb:
        for schema, name in conn.execute(read_sql("backup/select_continuous_aggregates.sql")).fetchall():
            out[f"{schema}.{name}"] = Relation(CAGG)
    return out


def invalid_indexes(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute(read_sql("backup/select_invalid_indexes.sql")).fetchall()]


def build(*, name: str, dbname: str, s3_key: str, bucket: str, size_bytes: int, sha256: str,
          pg_version: str, tsdb_version: str | None, pg_dump_major: int, relations: dict[str, Relation],
          hypertable_names: list[str], dump_seconds: float, taken_at: str, run_id: str) -> dict[str, Any]:
    counts = {k: r.rows for k, r in relations.items() if r.kind in COUNTED and r.rows is not None}
    return {
        "manifest_version": MANIFEST_VERSION, "name": name, "database": dbname, "format": "custom",
        "s3_bucket": bucket, "s3_key": s3_key, "size_bytes": size_bytes, "sha256": sha256,
        "pg_version": pg_version, "tsdb_version": tsdb_version, "pg_dump_major": pg_dump_major,
        "taken_at": taken_at, "run_id": run_id, "dump_seconds": round(dump_seconds, 3),
        "mb_per_s": round(size_bytes / 1e6 / dump_seconds, 2) if dump_seconds > 0 else None,
        "relations": {k: {"kind": r.kind} | ({"populated": r.populated} if r.kind == MATVIEW else {})
                      for k, r in sorted(relations.items())},
        "row_counts": counts, "total_rows": sum(counts.values()), "hypertables": hypertable_names,
        "verified": False, "verification": None,
    }


def recorded(manifest: dict[str, Any]) -> dict[str, Relation]:
    """The relations a manifest says a restore must reproduce.

    A manifest without ``relations`` (version 1) has no kinds: each entry of its ``row_counts`` (views
    included) comes back with kind None, and the restored database's kind of it decides how it is compared.
    """
    counts: dict[str, int] = manifest.get("row_counts") or {}
    kinds: dict[str, dict[str, Any]] | None = manifest.get("relations")
    if kinds is None:
        return {k: Relation(None, rows=n) for k, n in counts.items()}
    return {k: Relation(v["kind"], rows=counts.get(k), populated=v.get("populated")) for k, v in kinds.items()}


def _plural(n: int, kind: str) -> str:
    return f"{n} {kind}" + ("" if n == 1 else "s")


def _rows(n: int | None) -> str:
    return "? rows" if n is None else f"{n:,} row" + ("" if n == 1 else "s")


def _shown(r: Relation | None, kind: str) -> str:
    """A relation's state as the comparison of its kind sees it (for the log table)."""
    if r is None:
        return "missing"
    if kind in COUNTED:
        return _rows(r.rows)
    if kind == MATVIEW and r.populated is not None:
        return "populated" if r.populated else "not populated"
    return "present"


@dataclass
class Comparison:
    """A restored database against its manifest: every difference, not just the first."""

    relations: int = 0  # relations of the manifest compared
    rows: int = 0  # restored rows of its base tables and hypertables
    problems: list[str] = field(default_factory=list)
    differing: list[tuple[str, str]] = field(default_factory=list)  # (relation, kind) of the manifest that differ
    compared: Counter[str] = field(default_factory=Counter)  # relations of the manifest compared, by kind
    evidence: set[str] = field(default_factory=set)  # more_rows, fewer_rows, missing, unpopulated, extra, ...
    lines: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # one per relation, for a log table

    @property
    def ok(self) -> bool:
        return not self.problems

    def how_compared(self) -> str:
        """Which relations were compared and how, e.g. ``6 base tables by row count, 5 materialized views
        by presence and population state``."""
        c = self.compared
        parts = []
        if c[TABLE] or c[HYPERTABLE]:
            parts.append(" and ".join(_plural(c[k], k) for k in (TABLE, HYPERTABLE) if c[k]) + " by row count")
        if c[MATVIEW]:
            parts.append(f"{_plural(c[MATVIEW], MATVIEW)} by presence and population state")
        if c[CAGG]:
            parts.append(f"{_plural(c[CAGG], CAGG)} by presence")
        if c[UNKNOWN]:
            parts.append(f"{c[UNKNOWN]} of unknown kind (manifest version 1) by presence")
        return ", ".join(parts) or "no relation"

    def summary(self, limit: int = 20) -> str:
        """The first line names every difference (the cause); the second says whether all else matched."""
        shown = "; ".join(self.problems[:limit])
        if len(self.problems) > limit:
            shown += f"; and {len(self.problems) - limit} more"
        matched = self.relations - len(self.differing)
        if not self.differing:
            rest = f"every relation of the manifest matched ({self.how_compared()})"
        elif matched:
            rest = f"every other relation matched: {matched} of {self.relations} ({self.how_compared()})"
        else:
            rest = f"none of the {self.relations} relations of the manifest matched"
        return f"{shown}\n{rest}"

    def advice(self) -> str:
        """What the evidence points at, for the on-call."""
        out = []
        if "more_rows" in self.evidence:
            out.append("more rows after restore than in the dump's snapshot cannot come from this dump: the "
                       "database restored into was not empty, or the manifest was not counted with this dump "
                       "(edited, or from another run)")
        if self.evidence & {"fewer_rows", "missing"}:
            out.append("fewer rows (or a relation missing) after a restore without error: the dump lacks that "
                       "data (a pg_dump wrapper or options that exclude it: check QUANT_PG_BIN on the workers) or the "
                       "manifest was not counted in the dump's snapshot; fetch the object from the bucket and list it "
                       "with pg_restore --list, looking for the relation's TABLE DATA entries (its chunks', on "
                       "TimescaleDB)")
        if "unpopulated" in self.evidence:
            out.append("a materialized view populated at dump time came back unpopulated: look for its "
                       "MATERIALIZED VIEW DATA entry in pg_restore --list of the object in the bucket")
        if self.evidence & {"kind", "not_hypertable", "extra", "invalid_index"}:
            out.append("a relation of another kind, an extra relation, an invalid index or a hypertable not "
                       "restored as one: read pg_restore's and TimescaleDB's messages in this log")
        return "; ".join(out)


def _difference(want: Relation, got: Relation | None, kind: str) -> tuple[str, str] | None:
    """(what differs, evidence) of one relation, None when the restore reproduced what it must."""
    if got is None:
        had = f" (the dump's snapshot had {_rows(want.rows)})" if kind in COUNTED else ""
        return f"missing after restore{had}", "missing"
    if want.kind is not None and got.kind != want.kind:
        return f"a {got.kind} after restore", "kind"
    if kind in COUNTED and got.rows != want.rows:
        more = (got.rows or 0) > (want.rows or 0)
        return (f"{_rows(got.rows)} after restore, {_rows(want.rows)} in the dump's snapshot",
                "more_rows" if more else "fewer_rows")
    if kind == MATVIEW and want.populated and not got.populated:
        return "populated at dump time, not populated after restore", "unpopulated"
    return None


def compare(manifest: dict[str, Any], restored: dict[str, Relation], *, invalid: list[str] | None = None,
            restored_hypertables: list[str] | None = None) -> Comparison:
    """Base tables and hypertables by exact row count, materialized views and continuous aggregates by presence
    (and a materialized view populated at dump time must be populated again); no invalid index; every
    hypertable of the dump is one again."""
    expected = recorded(manifest)
    result = Comparison(relations=len(expected))
    for name, want in sorted(expected.items()):
        got = restored.get(name)
        kind = want.kind or (got.kind if got is not None and got.kind else UNKNOWN)
        result.compared[kind] += 1
        if got is not None and got.kind in COUNTED:
            result.rows += got.rows or 0
        diff = _difference(want, got, kind)
        if diff is not None:
            result.problems.append(f"{name} ({kind}): {diff[0]}")
            result.differing.append((name, kind))
            result.evidence.add(diff[1])
        result.lines.append((name, kind, _shown(want, kind), _shown(got, kind), "DIFFERS" if diff else ""))
    for name in sorted(set(restored) - set(expected)):
        kind = restored[name].kind or UNKNOWN
        result.problems.append(f"{name} ({kind}): present after restore but not in the manifest")
        result.evidence.add("extra")
        result.lines.append((name, kind, "not in the manifest", _shown(restored[name], kind), "DIFFERS"))
    for idx in invalid or []:
        result.problems.append(f"index {idx} is invalid after restore")
        result.evidence.add("invalid_index")
    if restored_hypertables is not None:
        reported = {n for n, _ in result.differing}  # a version 2 manifest's kinds have said it already
        for h in sorted(set(manifest.get("hypertables") or []) - set(restored_hypertables) - reported):
            result.problems.append(f"{h} was a hypertable in the dump but is not one after restore")
            result.evidence.add("not_hypertable")
    return result


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

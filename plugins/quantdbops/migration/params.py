"""The migration's trigger-form params: JSON schema for the form, and their strict reading in tasks.

The form (and the REST API) validate against the schema before a run is created; ``MigrationRequest``
checks again what JSON schema cannot say (start before end, a readable source file), before any write.
Identifiers never come from user text: tables and regions are picked from the registry's lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from quantdbops import REGIONS
from quantdbops.migration.source_plan import SliceFilter
from quantdbops.paramcheck import ParamError, choice_list, optional_date
from quantdbops.registry import migratable_tables

MIGRATABLE = tuple(t.name for t in migratable_tables())


def migration_params() -> dict[str, Any]:
    """Param objects of the trigger form (imported by the DAG file; built without any I/O)."""
    from airflow.sdk import Param

    return {
        "regions": Param(list(REGIONS), type="array", items={"type": "string", "enum": list(REGIONS)},
                         minItems=1, uniqueItems=True, title="Regions",
                         description="Markets to migrate. Market-wide tables (FX, indices, sentiment) "
                                     "are loaded whatever is picked here."),
        "tables": Param(list(MIGRATABLE), type="array", items={"type": "string", "enum": list(MIGRATABLE)},
                        minItems=1, uniqueItems=True, title="Tables",
                        description="Target tables to load (tickers is needed by every other table)."),
        "start_date": Param(None, type=["null", "string"], format="date", title="Start date",
                            description="Optional: first date of dated tables (inclusive)."),
        "end_date": Param(None, type=["null", "string"], format="date", title="End date",
                          description="Optional: last date of dated tables (inclusive)."),
        "dry_run": Param(True, type="boolean", title="Dry run",
                         description="Read, map, check and count everything; write nothing. "
                                     "Untick to migrate."),
        "source_path": Param(None, type=["null", "string"], pattern="^(/|s3://[^/]+/).+",
                             title="Source file override",
                             description="Absolute path of a Spock SQLite file on the workers, or s3://bucket/key "
                                         "of one (fetched by each worker that needs it, through the quant_s3 "
                                         "connection); empty = the spock_sqlite connection's file."),
        "source_sha256": Param(None, type=["null", "string"], pattern="^[0-9a-fA-F]{64}$",
                               title="Source SHA-256",
                               description="Optional: the SHA-256 the source file must have (checked when an "
                                           "s3:// source is fetched, and recorded for every run)."),
        "prune_tickers": Param(False, type="boolean", title="Prune tickers",
                               description="With tickers selected: delete target tickers of the selected regions "
                                           "that the source does not have (or quarantines), where no other table "
                                           "references them; the referenced ones are kept and listed. Off: "
                                           "tickers are only added and updated."),
    }


@dataclass(frozen=True)
class MigrationRequest:
    """What a run was asked to do, checked."""

    regions: tuple[str, ...]
    tables: tuple[str, ...]
    start_date: date | None
    end_date: date | None
    dry_run: bool
    source_path: str | None
    prune_tickers: bool = False
    source_sha256: str | None = None

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> MigrationRequest:
        return cls.from_params(context["params"])

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> MigrationRequest:
        regions = choice_list(params.get("regions", list(REGIONS)), REGIONS, "regions")
        tables = choice_list(params.get("tables", list(MIGRATABLE)), MIGRATABLE, "tables")
        start = optional_date(params.get("start_date"), "start_date")
        end = optional_date(params.get("end_date"), "end_date")
        if start and end and start > end:
            raise ParamError(f"start_date {start} is after end_date {end}")
        dry_run = params.get("dry_run", True)
        if not isinstance(dry_run, bool):
            raise ParamError(f"dry_run must be true or false, got {dry_run!r}")
        path = params.get("source_path") or None
        if path is not None and not str(path).startswith(("/", "s3://")):
            raise ParamError(f"source_path must be an absolute path or an s3:// URI, got {path!r}")
        sha = params.get("source_sha256") or None
        if sha is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", str(sha)):
            raise ParamError(f"source_sha256 must be 64 hexadecimal digits, got {sha!r}")
        prune = params.get("prune_tickers", False)
        if not isinstance(prune, bool):
            raise ParamError(f"prune_tickers must be true or false, got {prune!r}")
        return cls(regions, tables, start, end, dry_run, path, prune, sha.lower() if sha else None)

    def slice_filter(self) -> SliceFilter:
        regions = None if set(self.regions) == set(REGIONS) else self.regions
        return SliceFilter(regions=regions, start_date=self.start_date, end_date=self.end_date)

    def describe(self) -> str:
        if self.start_date or self.end_date:
            span = (f"dates {self.start_date or 'from the first'} to {self.end_date or 'the last'} (dated tables; "
                    "the others whole)")
        else:
            span = "all dates"
        return (f"{'DRY RUN of ' if self.dry_run else ''}{len(self.tables)} tables, regions "
                f"{','.join(self.regions)}, {span}{', pruning tickers' if self.prune_tickers else ''}")


__all__ = ["MIGRATABLE", "MigrationRequest", "ParamError", "migration_params"]

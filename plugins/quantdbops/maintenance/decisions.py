"""Plain decisions of the maintenance, without a database: what to vacuum first, how bloated an index
is, which indexes to rebuild, which invalid indexes are leftovers of a failed reindex, growth."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# REINDEX CONCURRENTLY builds "<index>_ccnew[N]" and, after the swap, drops "<index>_ccold[N]"; an
# interruption leaves either behind, invalid (PostgreSQL docs, REINDEX "Rebuilding Indexes Concurrently").
_LEFTOVER = re.compile(r"_cc(new|old)\d*$")


@dataclass(frozen=True)
class TableStats:
    """Tuple statistics of one relation (a table, a partition or a chunk)."""

    name: str
    n_live_tup: int
    n_dead_tup: int
    n_mod_since_analyze: int = 0
    never_analyzed: bool = False

    @property
    def dead_share(self) -> float:
        total = self.n_live_tup + self.n_dead_tup
        return self.n_dead_tup / total if total else 0.0

    @property
    def needs_work(self) -> bool:
        """Anything for VACUUM (ANALYZE) to do: dead tuples, changes since ANALYZE, or never analysed."""
        return self.n_dead_tup > 0 or self.n_mod_since_analyze > 0 or (self.never_analyzed and self.n_live_tup > 0)


def vacuum_order(stats: Iterable[TableStats]) -> list[TableStats]:
    """Relations with work to do, the largest dead-tuple share first (then most dead tuples, then name)."""
    todo = [s for s in stats if s.needs_work]
    return sorted(todo, key=lambda s: (-s.dead_share, -s.n_dead_tup, s.name))


def btree_bloat_pct(leaf_pages: int, empty_pages: int, deleted_pages: int, avg_leaf_density: float | None,
                    fillfactor: int = 90) -> float:
    """Wasted share of a B-tree's leaf level, from ``pgstatindex``.

    A fresh B-tree packs its leaves to ``fillfactor``; the live data is ``leaf_pages * avg_leaf_density``
    spread over every leaf page including empty and deleted ones, so bloat is what a rebuild would give back.
    """
    pages = leaf_pages + empty_pages + deleted_pages
    if pages <= 0 or avg_leaf_density is None or math.isnan(avg_leaf_density):
        return 0.0
    live = leaf_pages * avg_leaf_density / 100.0
    packed = fillfactor / 100.0
    return round(max(0.0, 1.0 - live / (pages * packed)) * 100.0, 1)


def estimated_bloat_pct(actual_pages: int, expected_pages: int) -> float:
    """Wasted share from the catalog estimate: pages a rebuild would not need, of the pages there are."""
    if actual_pages <= 0:
        return 0.0
    return round(max(0.0, (actual_pages - max(expected_pages, 0)) / actual_pages) * 100.0, 1)


@dataclass(frozen=True)
class IndexBloat:
    """One index's measurement."""

    index: str  # schema-qualified, quoted where PostgreSQL needs it
    schema_name: str
    index_name: str
    table_name: str  # the registry table it belongs to
    relation: str  # the relation it is on (the table, a partition or a chunk)
    access_method: str
    size_bytes: int
    bloat_pct: float | None  # None: not measurable (non-B-tree, or not readable)
    method: str
    valid: bool = True


def reindex_decision(ix: IndexBloat, threshold_pct: float, min_bytes: int) -> tuple[bool, str]:
    """Whether to rebuild an index, with the reason either way (the reason is logged)."""
    if not ix.valid:
        return False, "invalid index: handled by the leftover clean-up, not rebuilt"
    if ix.bloat_pct is None:
        return False, f"{ix.access_method} index: bloat not measurable ({ix.method}), left as is"
    if ix.bloat_pct <= threshold_pct:
        return False, f"bloat {ix.bloat_pct:.1f}% <= threshold {threshold_pct:g}%"
    if ix.size_bytes < min_bytes:
        return False, f"bloat {ix.bloat_pct:.1f}% but only {ix.size_bytes // 1024} kB < {min_bytes // 1024} kB"
    return True, f"bloat {ix.bloat_pct:.1f}% > threshold {threshold_pct:g}%"


def reindex_candidates(measured: Iterable[IndexBloat], threshold_pct: float, min_bytes: int) -> list[IndexBloat]:
    """Indexes to rebuild, the most wasted bytes first."""
    chosen = [ix for ix in measured if reindex_decision(ix, threshold_pct, min_bytes)[0]]
    return sorted(chosen, key=lambda ix: (-(ix.size_bytes * (ix.bloat_pct or 0)), ix.index))


def is_reindex_leftover(index_name: str) -> bool:
    """An invalid index named like the ones an interrupted REINDEX CONCURRENTLY leaves behind."""
    return bool(_LEFTOVER.search(index_name))


def growth(now_bytes: int, before_bytes: int | None, before_at: datetime | None,
           now_at: datetime) -> dict[str, Any]:
    """Growth since the previous measurement: bytes, percent and bytes per day."""
    if before_bytes is None or before_at is None:
        return {"growth_bytes": None, "growth_pct": None, "bytes_per_day": None}
    delta = now_bytes - before_bytes
    days = max((now_at - before_at).total_seconds() / 86400.0, 1e-9)
    pct = round(delta / before_bytes * 100.0, 2) if before_bytes else None
    return {"growth_bytes": delta, "growth_pct": pct, "bytes_per_day": round(delta / days)}


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    return f"{sign}{n:.1f} TB"  # pragma: no cover


# What the before/after columns of the run's closing table show for each action (the JSON keeps it all).
HEADLINE: dict[str, tuple[str, ...]] = {
    "vacuum": ("n_dead_tup", "n_live_tup"),
    "table_bloat": ("bloat_pct", "size_bytes"),
    "index_bloat": ("bloat_pct", "size_bytes"),
    "reindex": ("bloat_pct", "size_bytes"),
    "drop_invalid_index": ("size_bytes",),
    "compress_chunk": ("total_bytes",),
    "compression_ratio": ("before_bytes", "after_bytes", "ratio"),
    "chunk_count": ("chunks", "compressed"),
    "size": ("total_bytes", "growth_bytes"),
    "database_size": ("total_bytes", "growth_bytes"),
    "slow_query": ("mean_ms", "calls"),
    "create_partitions": ("partitions",),
}


def headline(action: str, values: dict[str, Any] | None) -> str:
    """A short rendering of a before/after JSON for the closing table (sizes human-readable)."""
    if not values:
        return ""
    keys = HEADLINE.get(action) or tuple(values)[:2]
    parts = []
    for key in keys:
        if key not in values or values[key] is None:
            continue
        value = values[key]
        if key.endswith("bytes") and isinstance(value, (int, float)):
            parts.append(f"{key.replace('_bytes', '') or 'size'} {human_bytes(value)}")
        elif isinstance(value, float):
            parts.append(f"{key} {value:,.1f}")
        elif isinstance(value, int):
            parts.append(f"{key} {value:,}")
        else:
            parts.append(f"{key} {value}")
    return ", ".join(parts)


def summarise_statuses(rows: Sequence[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """{action: {status: count}} of (action, status) pairs."""
    out: dict[str, dict[str, int]] = {}
    for action, status in rows:
        out.setdefault(action, {}).setdefault(status, 0)
        out[action][status] += 1
    return out

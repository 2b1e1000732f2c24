"""Write a deterministic sample of the Spock SQLite database, and its manifest.

    python scripts/generate_sample.py --out data/sample.db                       # 120 tickers x 260 days
    python scripts/generate_sample.py --out data/sample.db --defects --force     # with planted defects
    python scripts/generate_sample.py --out /tmp/big.db --tickers-per-region 400 --days 420   # ~1M bars
    python scripts/generate_sample.py --out /tmp/iso.db --shape iso-micro       # the same rows, spelled otherwise

Same arguments, same table contents (the end date defaults to a fixed day, never today). The manifest
(default <out>.manifest.json) lists row counts and, with --defects, every planted row and, for every rule the
migration declares, the rows planted for it or why no source row can break it. --shape picks how the values
are spelled (the rows are the same in every shape): sample (as always), iso-micro (every timestamp distinct,
ISO with microseconds), full-precision (every REAL to its last digit), sqlite-now (insert stamps as SQLite's
CURRENT_TIMESTAMP writes them, in bursts).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

# Runs from a checkout: the generator (scripts/sample) sits beside this script; the registry it plants by lives
# under plugins/, which only Airflow puts on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from sample import generate, write_manifest
from sample import manifest_path as sample_manifest_path
from sample.shapes import SHAPES


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="SQLite file to write")
    parser.add_argument("--tickers-per-region", type=int, default=20, help="tickers in each of the 6 regions")
    parser.add_argument("--days", type=int, default=260, help="trading days (Mon-Fri) per ticker")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end-date", type=date.fromisoformat, default=date(2025, 10, 17),
                        help="last trading day, YYYY-MM-DD (default 2025-10-17)")
    parser.add_argument("--defects", action="store_true", help="plant the real data's problems")
    parser.add_argument("--shape", choices=SHAPES, default="sample", help="how values are spelled (default sample)")
    parser.add_argument("--manifest", type=Path, help="manifest JSON path (default <out>.manifest.json)")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Generate the sample; print one line per table and the elapsed time. Returns the exit status."""
    args = _parse(argv)
    manifest_path = args.manifest or sample_manifest_path(args.out)
    existing = [p for p in (args.out, manifest_path) if p.exists()]
    if existing and not args.force:
        print(f"refusing to overwrite {', '.join(map(str, existing))} (use --force)", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        manifest = generate(args.out, tickers_per_region=args.tickers_per_region, days=args.days,
                            seed=args.seed, end_date=args.end_date, defects=args.defects, shape=args.shape)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    write_manifest(manifest, args.out, manifest_path)

    for table, rows in manifest["row_counts"].items():
        print(f"{table:<24} {rows:>12,} rows")
    bars = manifest["row_counts"]["ohlcv_data"]
    print(f"{'total':<24} {sum(manifest['row_counts'].values()):>12,} rows in {elapsed:.1f} s "
          f"({bars / elapsed:,.0f} ohlcv rows/s)")
    if manifest["planted"]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in manifest["planted_counts"].items())
        print(f"planted: {kinds}")
        rules = manifest["rules"]
        own = sum(bool(r["rowids"]) and "why" not in r for r in rules)
        through = sum(bool(r["rowids"]) and "why" in r for r in rules)
        print(f"declared rules: {len(rules)}; {own} broken by planted rows, {through} through their cause, "
              f"{len(rules) - own - through} by no row of the source's schema (the manifest's rules say why)")
    print(f"wrote {args.out} ({manifest['shape']} shape) and {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

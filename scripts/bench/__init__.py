"""Helpers of the `make bench` scripts (``scripts/bench_*.py``): legs, measurements and reports."""

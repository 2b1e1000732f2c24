"""Helpers of ``scripts/bench_load.py`` (`make bench`): the raw-COPY and pgloader legs, and the report."""

"""The load benchmark's verdict on a method whose result went wrong in some runs (``scripts/bench/report.py``):
pgloader has exited 1 in one run of twelve while the others loaded every row."""

from __future__ import annotations

from bench.report import OURS, PGLOADER, Leg, ratio


def _leg(key: str, seconds: list[float], wrong: list[str]) -> Leg:
    return Leg(key, key, rows=1_000_000, seconds=list(seconds), wrong_runs=list(wrong))


def test_a_run_gone_wrong_is_left_out_and_named_while_the_valid_runs_keep_the_rate() -> None:
    pgloader = _leg(PGLOADER, [12.0, 13.0], ["run 3 (12.85 s): pgloader exited 1"])
    pgloader.settle()
    assert pgloader.status == "ok" and pgloader.median == 12.5
    assert pgloader.note.startswith("1 of 3 runs went wrong") and "run 3 (12.85 s): pgloader exited 1" in pgloader.note
    ours = _leg(OURS, [4.0], [])
    ours.settle()
    assert ours.note == "" and ratio({OURS: ours, PGLOADER: pgloader}, PGLOADER) == 12.5 / 4.0


def test_a_method_whose_every_run_went_wrong_has_no_rate() -> None:
    pgloader = _leg(PGLOADER, [], ["run 1 (3.00 s): 0 rows", "run 2 (3.10 s): 0 rows"])
    pgloader.settle()
    assert pgloader.status == "invalid" and pgloader.rate is None
    assert pgloader.note == "run 1 (3.00 s): 0 rows; run 2 (3.10 s): 0 rows"
    assert ratio({OURS: _leg(OURS, [4.0], []), PGLOADER: pgloader}, PGLOADER) is None

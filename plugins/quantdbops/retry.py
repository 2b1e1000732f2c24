"""Retries inside a task: try again after a transient failure, waiting twice as long each time.

One loop for every caller (S3 transfers of the backups, alert deliveries); each turns ``Exhausted`` into its
own error with its own story. Airflow's task retries come on top.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Exhausted(Exception):
    """Every attempt failed transiently; ``errors`` holds each attempt's exception, in order."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__(str(errors[-1]))
        self.errors = errors


def backoff_delays(attempts: int, first_delay_s: float, max_delay_s: float = math.inf) -> list[float]:
    """The waits between ``attempts`` tries: doubling from ``first_delay_s``, at most ``max_delay_s``."""
    return [min(first_delay_s * 2**i, max_delay_s) for i in range(attempts - 1)]


def call_with_retries(fn: Callable[[], T], *, attempts: int, first_delay_s: float,
                      retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool],
                      max_delay_s: float = math.inf,
                      on_retry: Callable[[int, BaseException, float], None] | None = None,
                      sleep: Callable[[float], None] | None = None) -> tuple[T, int]:
    """``(fn(), attempts used)``. A ``retry_on`` failure (an instance of one of its types, or an exception
    the predicate ``retry_on`` says is transient) waits and tries again (``on_retry(attempt, error, wait)``
    first), with no wait after the last attempt, which raises ``Exhausted``; anything else propagates at
    once."""
    transient = (lambda exc: isinstance(exc, retry_on)) if isinstance(retry_on, tuple) else retry_on
    waits = backoff_delays(attempts, first_delay_s, max_delay_s)
    errors: list[BaseException] = []
    for n in range(1, attempts + 1):
        try:
            return fn(), n
        except Exception as exc:
            if not transient(exc):
                raise
            errors.append(exc)
            if n == attempts:
                raise Exhausted(errors) from exc
            if on_retry is not None:
                on_retry(n, exc, waits[n - 1])
            (sleep or time.sleep)(waits[n - 1])
    raise AssertionError("unreachable: attempts >= 1")


__all__ = ["Exhausted", "backoff_delays", "call_with_retries"]

"""Failures that say what to do next.

The convention of the bundle: a deterministic failure an operator can explain raises ``ActionableFailure``
with the problem as the message and the next step as ``what_to_do``. The failure alert
(``quantdbops.notifiers``) sends that text as the alert's "what to do"; the task log shows it under the
traceback. An operator may also carry a class-wide ``what_to_do`` attribute for failures it did not
explain itself; failing both, the alert points to the DAG's Docs tab (the runbook).
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException


class ActionableFailure(AirflowFailException):
    """A failure a retry cannot fix, with the next step for the on-call (no retry: fails at once)."""

    def __init__(self, message: str, *, what_to_do: str) -> None:
        super().__init__(message)
        self.message = message
        self.what_to_do = what_to_do

    def __str__(self) -> str:
        return f"{self.message}\nWhat to do: {self.what_to_do}"

    def __reduce__(self) -> tuple[object, ...]:  # keep what_to_do through pickling (kwargs-only init)
        return _rebuild, (self.message, self.what_to_do)


def _rebuild(message: str, what_to_do: str) -> ActionableFailure:
    return ActionableFailure(message, what_to_do=what_to_do)


def bad_params(exc: BaseException, *, nothing: str) -> ActionableFailure:
    """The failure of a run whose params do not validate; ``nothing`` says what did not happen."""
    return ActionableFailure(f"Bad params: {exc}", what_to_do=(
        f"{nothing}; trigger again with valid params (the trigger form lists the allowed values)"))


def what_to_do_of(exc: object, task: object = None) -> str | None:
    """The next step an exception (or what caused it) or the failing operator carries, if any."""
    seen: set[int] = set()
    while isinstance(exc, BaseException) and id(exc) not in seen:
        seen.add(id(exc))
        hint = getattr(exc, "what_to_do", None)
        if isinstance(hint, str) and hint.strip():
            return hint.strip()
        exc = exc.__cause__ or exc.__context__
    hint = getattr(task, "what_to_do", None)
    return hint.strip() if isinstance(hint, str) and hint.strip() else None


__all__ = ["ActionableFailure", "bad_params", "what_to_do_of"]

"""Strict reading of trigger-form params, shared by every DAG's request parser.

The form validates against JSON schema before a run exists; these re-check in the task (a run created
through the API with a bad conf still fails before any write) and say what was wrong.
"""

from __future__ import annotations

from datetime import date


class ParamError(ValueError):
    """The params cannot describe a run (shown as the task's failure reason)."""


def choice_list(value: object, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    """A non-empty selection from ``allowed``, returned in ``allowed``'s order without duplicates."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ParamError(f"{name} must be a non-empty list of {', '.join(allowed)}")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise ParamError(f"unknown {name}: {', '.join(map(str, unknown))}; allowed: {', '.join(allowed)}")
    return tuple(v for v in allowed if v in value)


def optional_date(value: object, name: str) -> date | None:
    """None for an empty value, else a YYYY-MM-DD date."""
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ParamError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None

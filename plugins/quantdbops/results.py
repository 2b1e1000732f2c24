"""Results that travel from one task to the next through XCom as themselves (not as loose dicts)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar


class XComResult:
    """A dataclass result that goes to XCom as plain JSON values and comes back as the same class.

    Airflow's serde calls ``serialize()`` and ``deserialize(data, version)``; the default round-trips flat
    dataclasses (``dataclasses.asdict``); results holding other objects override both. Every operator lists
    the result classes it returns in ``results`` so the workers accept them back (``serde.allow_class``).
    """

    __version__: ClassVar[int] = 1

    def serialize(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def deserialize(cls, data: Mapping[str, Any], version: int) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


__all__ = ["XComResult"]

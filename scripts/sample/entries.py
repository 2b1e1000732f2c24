"""The manifest's entries: what the loader must do with a planted row, and how its values are spelled.

SQLite stores whatever it is given in any column: text that is no valid UTF-8 too, if it arrives as a blob
cast to text (``CAST(x'..' AS TEXT)``). The manifest is JSON, so bytes and infinities get a tagged form.
"""

from __future__ import annotations

import math

Entry = dict[str, object]


def reject(label: str) -> Entry:
    """The manifest fields of a row the loader must quarantine under ``label`` ('reason:detail')."""
    reason, _, detail = label.partition(":")
    return {"expect": "reject", "reason": reason, "detail": detail, "label": label}


class RawText(bytes):
    """Bytes to store as TEXT exactly as they are (e.g. not valid UTF-8); a plain ``bytes`` is stored as a blob."""


def placeholder(value: object) -> str:
    """The SQL placeholder binding ``value`` as the storage class it stands for."""
    return "CAST(? AS TEXT)" if isinstance(value, RawText) else "?"


def manifest_value(value: object) -> object:
    """``value`` as the manifest's JSON spells it: text with bytes that are no UTF-8 as ``{"text_hex": ..}``, a
    blob as ``{"blob_hex": ..}``, an infinity as ``{"real": "inf"}``; anything else as it is."""
    if isinstance(value, RawText):
        return {"text_hex": value.hex()}
    if isinstance(value, bytes):
        return {"blob_hex": value.hex()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"real": repr(value)}
    return value


def stored_value(storage: str, raw: object) -> object:
    """A stored cell, read as ``typeof(c), CASE WHEN typeof(c) = 'text' THEN CAST(c AS BLOB) ELSE c END``, in the
    manifest's spelling (what a test compares a planted value with)."""
    if storage == "text":
        data = bytes(raw)  # type: ignore[arg-type]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return {"text_hex": data.hex()}
    return manifest_value(bytes(raw) if storage == "blob" else raw)  # type: ignore[arg-type]

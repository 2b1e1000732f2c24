"""A deterministic, seeded sample of the Spock platform's SQLite database (the migration's source).

`generate(path, ...)` writes the file and returns its manifest; with `defects=True` the file also holds
the real data's problems, each planted row listed in the manifest with what the loader must do with it.
`write_manifest` keeps it beside the file (`manifest_path`), `read_manifest` reads it back.
"""

from __future__ import annotations

from sample.generator import generate, manifest_path, read_manifest, write_manifest

__all__ = ["generate", "manifest_path", "read_manifest", "write_manifest"]

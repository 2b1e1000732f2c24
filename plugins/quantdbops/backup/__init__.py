"""Backups of the target database and restores from them.

One job per module:

- ``naming``: where a backup lives (S3 keys, local files) and when it was taken, from its name;
- ``dump``: ``pg_dump`` in custom format, SHA-256 computed while the dump streams to disk;
- ``manifest``: what a backup holds (per-table row counts, hypertables, versions) and comparing a restore to it;
- ``store``: S3 through the amazon provider's ``S3Hook``: upload with retries, read-back, manifest, "latest";
- ``restore``: ``pg_restore`` into a database (TimescaleDB's pre/post restore steps) and the post-restore checks;
- ``retention``: which backups expire (older than N days, never the newest K verified ones);
- ``journal``: the ``ops.backups`` rows every step writes.
"""

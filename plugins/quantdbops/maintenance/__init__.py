"""The weekly maintenance: vacuum, bloat measurement, bloat-driven reindex, TimescaleDB chunks or plain
partitions and views, and the usage report (slow queries, sizes and growth).

- ``params``: the trigger form's params and their strict reading (``MaintenanceRequest``);
- ``session``: timeouts of a maintenance connection, and what a lock or statement timeout means;
- ``locked``: a step's memo of tables whose lock was refused (the rest of such a table is not attempted);
- ``plan``: plain decisions without a database (vacuum order, index bloat, what to rebuild, growth);
- ``record``: ``ops.maintenance_log``, the record of every action and measurement;
- ``catalog``: which relations and indexes the selected tables have (catalog only, never locks);
- ``bloat``: table and index bloat, by pgstattuple where installed, else the standard estimate;
- ``vacuum``, ``reindex``, ``timescale`` (TimescaleDB), ``plain`` (plain PostgreSQL), ``usage``: the steps.
"""

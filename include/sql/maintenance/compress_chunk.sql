-- TimescaleDB before 2.18.
SELECT compress_chunk(%(chunk)s::regclass, if_not_compressed => true)

-- TimescaleDB 2.18 and later.
CALL convert_to_columnstore(%(chunk)s::regclass, if_not_columnstore => true)

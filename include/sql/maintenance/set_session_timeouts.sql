-- Session-wide timeouts of a maintenance connection: a lock not granted in time fails the statement
-- (the object is skipped and reported), and no statement outlives the task's own execution_timeout.
SELECT set_config('lock_timeout', %(lock_timeout)s, false),
       set_config('statement_timeout', %(statement_timeout)s, false)

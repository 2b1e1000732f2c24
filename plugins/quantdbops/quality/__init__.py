"""The daily data-quality checks: which checks exist and what each finds (``checks``), the row rules taken from
the table registry (``rules``), the trigger-form params (``params``), each check's SQL filled in for a table
(``compose``), running it in PostgreSQL (``runner``) and its results in ``ops.quality_results`` (``results``).

Nothing here imports ``quantdbops.operators``: the operators use this package, not the other way round.
"""

"""The daily data-quality checks: which checks exist (``checks``), the trigger-form params (``params``),
and running them set-based in PostgreSQL and recording the results (``runner``)."""

"""Custom operators: orchestration only; the work is in plain modules they call."""

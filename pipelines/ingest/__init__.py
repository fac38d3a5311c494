"""Reading the raw logs: file checks, casts, reason codes, the quarantine."""

"""Everything around the scoring: reading raw logs, the window state, shard tasks, publishing,
and the commands people type (docs/architecture.md)."""

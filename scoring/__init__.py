"""The spec (SCORING.md) as pure Polars: frames in, frames out, no files, clock or environment
(docs/architecture.md)."""

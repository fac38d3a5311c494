"""Every default and environment variable of expscore, once; and the shipped rules file.

A command that is not told where to read or write, which rules to use, how many shards to keep
or how much memory DuckDB may take, uses what is written here. The environment variables:

    EXPSCORE_LOG_FORMAT     auto (default), text, json, rich or plain: how log lines look
    EXPSCORE_DEBUG          set: an internal error shows its traceback instead of one line
    EXPSCORE_DUCKDB_MEMORY  DuckDB's memory limit while reading raw files (default 2GB)

The rules' own defaults (gates, window, knots) are part of the rules file's definition
(`scoring.rules`), since a rules file is data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

# Where the commands read and write when not told (a checkout's sample and its output folder).
DEFAULT_RAW = Path("data_samples/raw")
DEFAULT_OUT = Path("output")

# The shipped rules (SCORING.md 11), a file of this package.
SHIPPED_RULES = "rules.default.toml"

LOG_FORMAT_VAR = "EXPSCORE_LOG_FORMAT"
DEBUG_VAR = "EXPSCORE_DEBUG"
DUCKDB_MEMORY_VAR = "EXPSCORE_DUCKDB_MEMORY"
# One partition of one log at a time needs little; Polars wants the rest of the machine.
DUCKDB_MEMORY = "2GB"

# The window state's shards: enough for about this many order versions of a full window each,
# and never more than MAX_SHARDS (`--shards` is checked against it).
ORDERS_PER_SHARD = 4_000_000
MAX_SHARDS = 1024

# Rows `expscore query` prints unless told otherwise (--max-rows).
QUERY_MAX_ROWS = 50


def shipped_rules_bytes() -> bytes:
    return resources.files(__name__).joinpath(SHIPPED_RULES).read_bytes()


def environment(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return os.environ if env is None else env


def debug(env: Mapping[str, str] | None = None) -> bool:
    """EXPSCORE_DEBUG is set (to anything but empty)."""
    return bool(environment(env).get(DEBUG_VAR))


def duckdb_memory(env: Mapping[str, str] | None = None) -> str:
    return environment(env).get(DUCKDB_MEMORY_VAR, DUCKDB_MEMORY)

"""Wide to long in one plan node.

A `concat` of one `select` per indicator repeats the whole upstream plan once per indicator, and
the optimiser then spends seconds de-duplicating it. One struct column per item and a single
`unpivot` keeps the plan linear.
"""

from __future__ import annotations

import polars as pl


def to_long(
    frame: pl.LazyFrame,
    index: list[str],
    items: dict[str, dict[str, pl.Expr]],
    variable_name: str,
) -> pl.LazyFrame:
    """One row per index x item, with the item's fields as columns."""
    structs = [pl.struct(**fields).alias(name) for name, fields in items.items()]
    return (
        frame.select(*index, *structs)
        .unpivot(on=list(items), index=index, variable_name=variable_name, value_name="__fields")
        .unnest("__fields")
    )

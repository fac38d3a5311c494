"""Piecewise-linear interpolation through knots, as a Polars expression (SCORING.md 5.3, 12.12).

Flat beyond the first and last knot. Each value is computed from its own segment only, so at a knot
the result is exactly that knot's score: a shop at 0.98 on a [0.98, 4.8] knot gets 4.8, not
4.7999999999, and lands in the band a merchant would expect.
"""

from __future__ import annotations

from itertools import pairwise

import polars as pl

from scoring.rules import Knots


def interp(x: pl.Expr, knots: Knots) -> pl.Expr:
    """`interp(x, knots)`; null stays null. Knots are sorted by value (the rules parser does it)."""
    (first_x, first_y), (_, last_y) = knots[0], knots[-1]
    expr = pl.when(x.is_null()).then(None).when(x <= first_x).then(pl.lit(first_y))
    for (x0, y0), (x1, y1) in pairwise(knots):
        expr = expr.when(x < x1).then(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    return expr.otherwise(pl.lit(last_y)).cast(pl.Float64)

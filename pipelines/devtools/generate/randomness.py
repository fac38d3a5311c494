"""Counter-based randomness for the generator: every draw is a hash of (seed, stream name, entity
id), so a value never depends on row order, chunk boundaries or on what else was drawn; and the
small expressions the simulation builds from draws (pick a bucket, interpolate a rate)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

_GOLDEN = pa.scalar(0x9E3779B97F4A7C15, pa.uint64())
_MIX1 = pa.scalar(0xBF58476D1CE4E5B9, pa.uint64())
_MIX2 = pa.scalar(0x94D049BB133111EB, pa.uint64())


def _shr(x: pa.ChunkedArray, n: int) -> pa.ChunkedArray:
    return pc.shift_right(x, pa.scalar(n, pa.uint64()))


@dataclass(frozen=True)
class Rng:
    """Counter-based random numbers: splitmix64 of (seed, stream, key).

    A draw is a pure function of its inputs, so the same order gets the same pickup delay whether it
    is simulated alone or among a million, and streams are independent by name. (NumPy is not
    installed in the project's environment; PyArrow's wrapping uint64 arithmetic does the hashing.)
    """

    seed: int

    def _offset(self, stream: str) -> pa.Scalar:
        digest = hashlib.blake2b(f"{self.seed}:{stream}".encode(), digest_size=8).digest()
        return pa.scalar(int.from_bytes(digest, "little"), pa.uint64())

    def bits(self, keys: pl.Series, stream: str) -> pa.ChunkedArray:
        z = pc.add(pc.multiply(keys.cast(pl.UInt64).to_arrow(), _GOLDEN), self._offset(stream))
        z = pc.multiply(pc.bit_wise_xor(z, _shr(z, 30)), _MIX1)
        z = pc.multiply(pc.bit_wise_xor(z, _shr(z, 27)), _MIX2)
        return pc.bit_wise_xor(z, _shr(z, 31))

    def uniform(self, keys: pl.Series, stream: str) -> pl.Series:
        """Uniform in the open interval (0, 1), 53 bits."""
        top = pc.cast(_shr(self.bits(keys, stream), 11), pa.float64())
        return pl.Series(keys.name, pc.multiply(pc.add(top, 0.5), 2.0**-53))

    def normal(self, keys: pl.Series, stream: str) -> pl.Series:
        """Standard normal by Box-Muller on the two 32-bit halves of one draw."""
        b = self.bits(keys, stream)
        hi = pl.Series(pc.cast(_shr(b, 32), pa.float64())) + 0.5
        lo = pl.Series(
            pc.cast(pc.bit_wise_and(b, pa.scalar(0xFFFFFFFF, pa.uint64())), pa.float64())
        )
        z = (-2.0 * (hi * 2.0**-32).log()).sqrt() * (lo * (2.0 * math.pi * 2.0**-32)).cos()
        return z.alias(keys.name)

    def u(self, key: str | pl.Expr, stream: str) -> pl.Expr:
        """Expression: a uniform draw per row, keyed by `key` (an id column)."""
        return _expr(key).map_batches(
            lambda s: self.uniform(s, stream), return_dtype=pl.Float64, is_elementwise=True
        )

    def z(self, key: str | pl.Expr, stream: str) -> pl.Expr:
        """Expression: a standard normal draw per row, keyed by `key`."""
        return _expr(key).map_batches(
            lambda s: self.normal(s, stream), return_dtype=pl.Float64, is_elementwise=True
        )


def _expr(key: str | pl.Expr) -> pl.Expr:
    return pl.col(key) if isinstance(key, str) else key


class Draws:
    """The named random draws of one simulation step, keyed by an id column.

    `u(name)` / `z(name)` return a column reference and remember the draw; `with_columns` and
    `select` first attach the remembered draws the frame lacks (the arguments are built, and so
    register their draws, before the call), and `detach` drops them at the end of the step. Eager
    Polars re-runs a shared `map_batches` expression at each use; this way each draw runs once.
    """

    def __init__(self, rng: Rng, key: str, stream: str) -> None:
        self._rng, self._key, self._stream = rng, key, stream
        self._columns: dict[str, pl.Expr] = {}

    def _remember(self, kind: str, name: str) -> pl.Expr:
        column = f"__{kind}:{self._stream}:{name}"
        if column not in self._columns:
            draw = self._rng.u if kind == "u" else self._rng.z
            self._columns[column] = draw(self._key, f"{self._stream}:{name}")
        return pl.col(column)

    def u(self, name: str) -> pl.Expr:
        """A uniform draw in (0, 1)."""
        return self._remember("u", name)

    def z(self, name: str) -> pl.Expr:
        """A standard normal draw."""
        return self._remember("z", name)

    def _attach(self, frame: pl.DataFrame) -> pl.DataFrame:
        missing = {c: e for c, e in self._columns.items() if c not in frame.columns}
        return frame.with_columns(**missing) if missing else frame

    def with_columns(self, frame: pl.DataFrame, *exprs: pl.Expr, **named: pl.Expr) -> pl.DataFrame:
        return self._attach(frame).with_columns(*exprs, **named)

    def select(self, frame: pl.DataFrame, *exprs: str | pl.Expr, **named: pl.Expr) -> pl.DataFrame:
        return self._attach(frame).select(*exprs, **named)

    def detach(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.drop([c for c in self._columns if c in frame.columns])


def _pick(u: pl.Expr, probs: Sequence[pl.Expr | float]) -> pl.Expr:
    """Bucket index of a uniform draw: 0 with probability probs[0], 1 with probs[1], ...,
    and len(probs) with the remaining probability (the "none of these" outcome)."""
    index: pl.Expr = pl.lit(0, pl.Int32)
    cumulative: pl.Expr = pl.lit(0.0)
    for p in probs:
        cumulative = cumulative + p
        index = index + (u >= cumulative).cast(pl.Int32)
    return index


def _choose(index: pl.Expr, values: Sequence[str]) -> pl.Expr:
    return index.replace_strict(dict(enumerate(values)), return_dtype=pl.String)


def _lerp(bad: float, good: float, quality: pl.Expr, power: float = 1.0) -> pl.Expr:
    """A rate or delay that moves from `bad` (quality 0) to `good` (quality 1)."""
    return good + (bad - good) * (1.0 - quality) ** power


def _between(u: pl.Expr, lo: float, hi: float) -> pl.Expr:
    return lo + (hi - lo) * u

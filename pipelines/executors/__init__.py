"""Who runs the shard tasks: this process, a local process pool, or a Ray cluster (issue 6).

Every executor runs the same function on the same task values and returns the results in task
order; tasks read and write their data through the exchange (pipelines/executors/exchange.py), so an
executor only moves small task descriptions and small results. Which one runs them cannot change
a table: that is what tests/pipelines/executors/test_executors.py checks.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pipelines.errors import InputError

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "processes", "ray")


class Executor(Protocol):
    name: str

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        """`[fn(t) for t in tasks]`, run wherever this executor runs things."""
        ...


@dataclass(frozen=True)
class ExecutorOptions:
    """How and where shard tasks run: `--executor`, its settings, and `--exchange`.

    `workers` sizes the process pool (default: one per core); `ray_address` names the Ray cluster
    (default: RAY_ADDRESS, else a local one); `exchange` is the folder or object-store URI the
    shard files go through (default: under the output's `.state`). Tasks on other machines must
    be able to read it.
    """

    kind: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    exchange: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise InputError(f"--executor {self.kind}: must be one of {', '.join(EXECUTORS)}")
        if self.ray_address is not None and self.kind != "ray":
            raise InputError("--ray-address is only for --executor ray")
        if self.workers is not None and self.kind != "processes":
            raise InputError("--workers is only for --executor processes")


IN_PROCESS = ExecutorOptions()


class LocalExecutor:
    """In this process, one task after another: the default, and the reference for the others."""

    name = "local"

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        return [fn(task) for task in tasks]


class ProcessExecutor:
    """A pool of local worker processes, one task each at a time.

    Workers are spawned, not forked: a forked child inherits the parent's Polars and DuckDB thread
    pools in whatever state they were, which can deadlock.
    """

    name = "processes"

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self._pool = pool

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        return list(self._pool.map(fn, tasks))


class RayExecutor:
    """One Ray task per shard, on the cluster `ray.init` connected to (or a local one)."""

    name = "ray"

    def __init__(self, ray: Any) -> None:
        self._ray = ray

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        remote = self._ray.remote(fn)
        return self._ray.get([remote.remote(task) for task in tasks])


@contextmanager
def open_executor(options: ExecutorOptions, tasks: int) -> Iterator[Executor]:
    """The executor `options` name, ready for `tasks` tasks; its resources end with the block."""
    if options.kind == "local":
        yield LocalExecutor()
    elif options.kind == "processes":
        workers = max(1, min(tasks, options.workers or os.cpu_count() or 1))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            yield ProcessExecutor(pool)
    else:
        with _ray_session(options.ray_address) as ray:
            yield RayExecutor(ray)


@contextmanager
def executor_session(options: ExecutorOptions) -> Iterator[None]:
    """Keep a Ray connection open across several runs (a backfill), instead of one per run.

    Inside the block every `open_executor` for Ray reuses the connection; other executors need
    nothing held.
    """
    if options.kind != "ray":
        yield
        return
    with _ray_session(options.ray_address):
        yield


@contextmanager
def _ray_session(address: str | None) -> Iterator[Any]:
    """Ray, connected: reuse a session the caller started, else connect (and disconnect after).

    With no address, `ray.init` joins the cluster named by RAY_ADDRESS, or else starts a local one.
    """
    try:
        import ray
    except ImportError as exc:
        raise InputError(
            "--executor ray needs Ray, which is an optional extra: pip install 'expscore[ray]'"
        ) from exc
    if ray.is_initialized():
        yield ray
        return
    ray.init(
        address=address,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()

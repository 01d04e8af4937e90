"""Single flight: identical calls made while one is running wait for it and share its answer.

Under an incident every operator loads the same first page, and a page is a fan-out to every
project's store. With this, 50 clients asking for the same page while it is being read cost one
read, not 50.

An answer that was shared (another identical call arrived while it was computed) is also kept
for ``reuse_seconds``: under a burst the computations otherwise run back to back, one per
flight, and take all the CPU there is. An answer nobody shared is never reused, so a lone
operator (or a test) that acts and then reloads always sees what the stores hold now; and
:meth:`SingleFlight.forget` drops everything kept, for the dashboard's own writes.

The key must hold everything the answer depends on (for a page: the query, whose projects are
the principal's scope, and the cursor), so that callers only ever share an answer each of them
would have computed alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, cast

__all__ = ["SingleFlight"]

T = TypeVar("T")

MAX_KEPT = 64
"""Shared answers kept at most: a page of 50 rows is ~30 KB, so this bounds them to ~2 MB."""


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "generation", "joined", "landed", "result")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.joined = 0
        self.landed = 0.0


class SingleFlight(Generic[T]):
    """Shares one running computation per key between threads."""

    def __init__(self, reuse_seconds: float = 0.0) -> None:
        self.reuse_seconds = reuse_seconds
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[T]] = {}
        self._kept: dict[Hashable, _Flight[T]] = {}
        self._generation = 0  # moved on by forget(): a flight begun before it is not kept

    def run(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, or the answer of the identical call already running (or of a shared
        one that landed less than ``reuse_seconds`` ago)."""
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and time.monotonic() - kept.landed < self.reuse_seconds:
                return cast(T, kept.result)
            flight = self._flights.get(key)
            owner = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight(self._generation)
            else:
                flight.joined += 1
        if not owner:
            # compute() is bounded by the store timeout, so the wait is too.
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return cast(T, flight.result)  # set whenever error is not
        try:
            flight.result = compute()
            return flight.result
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
                flight.landed = time.monotonic()
                fresh = flight.generation == self._generation
                if flight.joined and flight.error is None and fresh and self.reuse_seconds > 0:
                    self._keep(key, flight)
            flight.done.set()

    def forget(self) -> None:
        """Reuse nothing computed so far (a write the next answers must show)."""
        with self._lock:
            self._kept.clear()
            self._generation += 1

    def _keep(self, key: Hashable, flight: _Flight[T]) -> None:
        self._kept.pop(key, None)
        self._kept[key] = flight
        now = flight.landed
        for old in [k for k, f in self._kept.items() if now - f.landed >= self.reuse_seconds]:
            del self._kept[old]
        while len(self._kept) > MAX_KEPT:
            del self._kept[next(iter(self._kept))]

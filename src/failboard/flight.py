"""Single flight: identical calls made while one is running wait for it and share its answer.

Under an incident every operator loads the same first page, and a page is a fan-out to every
project's store. With this, 50 clients asking for the same page while it is being read cost one
read, not 50 — and no answer is ever older than the request: a call only joins a computation
that is still running, and one that arrives after it finished starts its own. So a client that
acts and then reloads always sees what the stores hold after its action.

The key must hold everything the answer depends on (for a page: the query, whose projects are
the principal's scope, and the cursor), so that callers only ever share an answer each of them
would have computed alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, cast

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Shares one running computation per key between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[T]] = {}

    def run(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, or the answer of the identical call already running."""
        with self._lock:
            flight = self._flights.get(key)
            owner = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
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
            flight.done.set()

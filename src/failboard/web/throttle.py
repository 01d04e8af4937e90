"""Sign-in rate limiting, in memory: so many failures in a window, per client address and per
user name, then 429 until the oldest failure leaves the window.

Per name stops a slow guess at one account from many addresses; per address stops one client
guessing many names. The address limit is higher, because an office behind one NAT shares it.
In memory and per process: with several workers each counts on its own (see docs/security.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["LoginThrottle", "Window"]

MAX_KEYS = 10_000
"""Keys remembered per window; the stalest go first (a flood of names must not eat memory)."""


class Window:
    """At most ``limit`` failures per key in any ``seconds``."""

    def __init__(
        self, limit: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.seconds = seconds
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        found = self._failures.get(key)
        if found is None:
            return deque()
        while found and found[0] <= now - self.seconds:
            found.popleft()
        if not found:
            del self._failures[key]
        return found

    def wait(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 when it may now."""
        with self._lock:
            now = self.clock()
            recent = self._recent(key, now)
            if len(recent) < self.limit:
                return 0
            return max(1, math.ceil(recent[0] + self.seconds - now))

    def fail(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            recent = self._recent(key, now)
            if key not in self._failures:
                if len(self._failures) >= MAX_KEYS:
                    del self._failures[next(iter(self._failures))]
                self._failures[key] = recent
            recent.append(now)

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


class LoginThrottle:
    """The two windows of the sign-in form."""

    def __init__(
        self,
        per_name: int = 5,
        per_address: int = 20,
        seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.names = Window(per_name, seconds, clock)
        self.addresses = Window(per_address, seconds, clock)

    def wait(self, address: str, name: str) -> int:
        return max(self.addresses.wait(address), self.names.wait(name.casefold()))

    def failed(self, address: str, name: str) -> None:
        self.addresses.fail(address)
        self.names.fail(name.casefold())

    def succeeded(self, name: str) -> None:
        # Only the name's count is forgiven: forgiving the address would let one valid account
        # reset the counter between guesses at the others.
        self.names.clear(name.casefold())

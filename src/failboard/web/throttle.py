"""Sign-in rate limiting: so many failures in a window, per client address and per user name,
then 429 until the oldest failure leaves the window.

Per name stops a slow guess at one account from many addresses; per address stops one client
guessing many names. The address limit is higher, because an office behind one NAT shares it.

The failures are counted in the spool database, so N dashboards behind one load balancer allow
what one does, not N times that (web/shared.py). Each process also counts its own in memory:
when the spool cannot answer, that count still limits the guesses sent to this process.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from datetime import datetime, timedelta
from typing import Protocol

from failboard.exceptions import SpoolError
from failboard.web.shared import Clock, Outage, utc_now

__all__ = ["FailureLog", "LoginThrottle", "MemoryFailures", "Window"]

MAX_KEYS = 10_000
"""Keys remembered in memory per scope; the stalest go first (a flood of names must not eat
memory)."""


class FailureLog(Protocol):
    """Where failed sign-ins are counted: :class:`failboard.web.shared.SharedState` (every
    dashboard) or :class:`MemoryFailures` (this process). The shared one raises SpoolError when it
    cannot answer."""

    def record_failure(self, scope: str, subject: str, at: datetime, keep_after: datetime) -> None:
        """One failure of ``subject`` at ``at``; those at or before ``keep_after`` may go."""

    def failures(self, scope: str, subject: str, after: datetime) -> tuple[int, datetime | None]:
        """How many failures of ``subject`` came after ``after``, and the oldest of them."""

    def forgive(self, scope: str, subject: str) -> None:
        """Forget every failure of ``subject``."""


class MemoryFailures:
    """The failures this process saw: the fallback when the spool cannot answer, and the only
    count when no spool is shared."""

    def __init__(self) -> None:
        self._failures: dict[tuple[str, str], deque[datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], after: datetime) -> deque[datetime]:
        found = self._failures.get(key)
        if found is None:
            return deque()
        while found and found[0] <= after:
            found.popleft()
        if not found:
            del self._failures[key]
        return found

    def record_failure(self, scope: str, subject: str, at: datetime, keep_after: datetime) -> None:
        key = (scope, subject)
        with self._lock:
            recent = self._recent(key, keep_after)
            if key not in self._failures:
                if len(self._failures) >= MAX_KEYS:
                    del self._failures[next(iter(self._failures))]
                self._failures[key] = recent
            recent.append(at)

    def failures(self, scope: str, subject: str, after: datetime) -> tuple[int, datetime | None]:
        with self._lock:
            recent = self._recent((scope, subject), after)
            return len(recent), (recent[0] if recent else None)

    def forgive(self, scope: str, subject: str) -> None:
        with self._lock:
            self._failures.pop((scope, subject), None)


class Window:
    """At most ``limit`` failures per key of ``scope`` in any ``seconds``, counted in ``shared``
    when given (and reachable) and always in this process's memory as well."""

    def __init__(
        self,
        limit: int,
        seconds: float,
        clock: Clock = utc_now,
        *,
        scope: str = "key",
        shared: FailureLog | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.limit = limit
        self.seconds = seconds
        self.clock = clock
        self.scope = scope
        self.shared = shared
        self.memory = MemoryFailures()
        self.outage = outage or Outage("sign-in throttle")

    def _span(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def wait(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 when it may now."""
        now = self.clock()
        after = now - self._span()
        count, oldest = self._count(key, after)
        if count < self.limit or oldest is None:
            return 0
        return max(1, math.ceil((oldest + self._span() - now).total_seconds()))

    def _count(self, key: str, after: datetime) -> tuple[int, datetime | None]:
        if self.shared is not None and not self.outage.skipping():
            try:
                found = self.shared.failures(self.scope, key, after)
            except SpoolError as exc:
                self.outage.failed(exc)
            else:
                self.outage.answered()
                return found
        return self.memory.failures(self.scope, key, after)

    def fail(self, key: str) -> None:
        now = self.clock()
        after = now - self._span()
        self.memory.record_failure(self.scope, key, now, after)
        if self.shared is not None:
            try:
                self.shared.record_failure(self.scope, key, now, after)
            except SpoolError as exc:
                self.outage.failed(exc)

    def clear(self, key: str) -> None:
        self.memory.forgive(self.scope, key)
        if self.shared is not None:
            try:
                self.shared.forgive(self.scope, key)
            except SpoolError as exc:
                self.outage.failed(exc)


class LoginThrottle:
    """The two windows of the sign-in form. Blocking (with ``shared``, each call queries the
    spool): call it from a worker thread."""

    def __init__(
        self,
        per_name: int = 5,
        per_address: int = 20,
        seconds: float = 300.0,
        clock: Clock = utc_now,
        shared: FailureLog | None = None,
    ) -> None:
        # One outage for both windows: when the name's count could not be read, the address's
        # is not tried (and waited for) again in the same request.
        outage = Outage("sign-in throttle")
        self.names = Window(per_name, seconds, clock, scope="name", shared=shared, outage=outage)
        self.addresses = Window(
            per_address, seconds, clock, scope="address", shared=shared, outage=outage
        )

    def wait(self, address: str, name: str) -> int:
        return max(self.addresses.wait(address), self.names.wait(name.casefold()))

    def failed(self, address: str, name: str) -> None:
        self.addresses.fail(address)
        self.names.fail(name.casefold())

    def succeeded(self, name: str) -> None:
        # Only the name's count is forgiven: forgiving the address would let one valid account
        # reset the counter between guesses at the others.
        self.names.clear(name.casefold())

"""web/throttle.py: the sign-in windows, counted in a shared log and in this process's memory,
which alone counts when the shared log cannot answer. Time is an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from failboard.exceptions import SpoolError
from failboard.web.throttle import LoginThrottle, MemoryFailures, Window

START = datetime(2027, 1, 20, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Broken(MemoryFailures):
    """A shared log that works until it is cut."""

    down = False

    def record_failure(self, scope: str, subject: str, at: datetime, keep_after: datetime) -> None:
        if self.down:
            raise SpoolError("spool (x): cannot connect: refused")
        super().record_failure(scope, subject, at, keep_after)

    def failures(self, scope: str, subject: str, after: datetime) -> tuple[int, datetime | None]:
        if self.down:
            raise SpoolError("spool (x): cannot connect: refused")
        return super().failures(scope, subject, after)


def test_the_throttle_window() -> None:
    clock = Clock()
    window = Window(3, 60, clock=clock)
    for _ in range(3):
        assert window.wait("a") == 0
        window.fail("a")
    assert window.wait("a") == 60 and window.wait("b") == 0
    clock.advance(30)
    assert window.wait("a") == 30
    clock.advance(30)
    assert window.wait("a") == 0  # the oldest failures left the window
    window.fail("a")
    window.clear("a")
    assert window.wait("a") == 0


def test_the_login_throttle_counts_names_and_addresses() -> None:
    throttle = LoginThrottle(per_name=2, per_address=3, seconds=10, clock=Clock())
    throttle.failed("1.1.1.1", "Ops")
    throttle.failed("2.2.2.2", "ops")  # names are compared case-insensitively
    assert throttle.wait("3.3.3.3", "OPS") > 0
    throttle.succeeded("ops")
    assert throttle.wait("3.3.3.3", "ops") == 0
    for name in ("a", "b", "c"):
        throttle.failed("9.9.9.9", name)
    assert throttle.wait("9.9.9.9", "fresh") > 0


def test_two_throttles_over_one_log_count_together_and_forgive_together() -> None:
    shared, clock = MemoryFailures(), Clock()
    one = LoginThrottle(per_name=2, seconds=10, clock=clock, shared=shared)
    two = LoginThrottle(per_name=2, seconds=10, clock=clock, shared=shared)
    one.failed("1.1.1.1", "ops")
    clock.advance(4)
    two.failed("2.2.2.2", "ops")
    assert one.wait("3.3.3.3", "ops") == 6  # until the first failure, on the other, leaves
    two.succeeded("ops")
    assert one.wait("3.3.3.3", "ops") == 0


def test_without_the_shared_log_each_process_counts_its_own() -> None:
    shared, clock = Broken(), Clock()
    throttle = LoginThrottle(per_name=2, seconds=10, clock=clock, shared=shared)
    throttle.names.outage.pause = 0  # ask the log every time
    throttle.failed("1.1.1.1", "ops")
    shared.down = True
    throttle.failed("1.1.1.1", "ops")  # not in the shared log, but in memory
    assert throttle.wait("1.1.1.1", "ops") == 10
    shared.down = False
    assert throttle.wait("1.1.1.1", "ops") == 0  # the log holds one: back to the shared count

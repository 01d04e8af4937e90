from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from failboard.flight import SingleFlight


def test_concurrent_identical_calls_share_one_computation() -> None:
    flight: SingleFlight[int] = SingleFlight()
    started, release = threading.Event(), threading.Event()
    calls = []

    def compute() -> int:
        calls.append(1)
        started.set()
        release.wait(5)
        return 42

    with ThreadPoolExecutor(10) as pool:
        first = pool.submit(flight.run, "k", compute)
        assert started.wait(5)
        joined = [pool.submit(flight.run, "k", compute) for _ in range(7)]
        other = pool.submit(flight.run, "other", lambda: 7)
        assert other.result(5) == 7  # another key never waits for this one
        release.set()
        assert first.result(5) == 42 and [f.result(5) for f in joined] == [42] * 7
    assert len(calls) == 1


def test_a_call_after_the_flight_landed_computes_afresh() -> None:
    flight: SingleFlight[int] = SingleFlight()
    values = iter([1, 2])
    assert flight.run("k", lambda: next(values)) == 1
    assert flight.run("k", lambda: next(values)) == 2


def test_an_error_reaches_every_waiter_and_is_not_kept() -> None:
    flight: SingleFlight[int] = SingleFlight()
    started, release = threading.Event(), threading.Event()

    def boom() -> int:
        started.set()
        release.wait(5)
        raise RuntimeError("store down")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(flight.run, "k", boom)
        assert started.wait(5)
        second = pool.submit(flight.run, "k", boom)
        release.set()
        for future in (first, second):
            with pytest.raises(RuntimeError, match="store down"):
                future.result(5)
    assert flight.run("k", lambda: 3) == 3

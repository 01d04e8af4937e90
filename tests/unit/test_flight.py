from __future__ import annotations

import threading
import time
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


def _shared_once(flight: SingleFlight[int], value: int, forget: bool = False) -> None:
    """Run one computation of ``value`` for key "k" that a second call joins (``forget``: and
    forget() while it runs)."""
    started, release = threading.Event(), threading.Event()

    def compute() -> int:
        started.set()
        release.wait(5)
        return value

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(flight.run, "k", compute)
        assert started.wait(5)
        second = pool.submit(flight.run, "k", compute)
        while not flight._flights["k"].joined:  # the second call has joined
            time.sleep(0.001)
        if forget:
            flight.forget()
        release.set()
        assert first.result(5) == second.result(5) == value


def test_a_shared_answer_is_reused_briefly_and_a_lone_one_never() -> None:
    flight: SingleFlight[int] = SingleFlight(reuse_seconds=0.3)
    assert flight.run("k", lambda: 1) == 1
    assert flight.run("k", lambda: 2) == 2  # nobody shared 1: not kept
    _shared_once(flight, 3)
    assert flight.run("k", lambda: 4) == 3  # shared: reused
    assert flight.run("other", lambda: 5) == 5
    time.sleep(0.35)
    assert flight.run("k", lambda: 6) == 6  # expired


def test_forget_drops_kept_answers() -> None:
    flight: SingleFlight[int] = SingleFlight(reuse_seconds=30)
    _shared_once(flight, 1)
    assert flight.run("k", lambda: 2) == 1
    flight.forget()
    assert flight.run("k", lambda: 3) == 3


def test_an_answer_begun_before_forget_is_not_kept() -> None:
    flight: SingleFlight[int] = SingleFlight(reuse_seconds=30)
    _shared_once(flight, 1, forget=True)
    assert flight.run("k", lambda: 2) == 2

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from failboard.aggregate import Aggregator
from failboard.exceptions import InvalidRequest, NotFound
from failboard.models import FailedJob, JobQuery
from tests.unit.memory import KeyedMemoryReader, MemoryReader

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _rows(seed: int, n: int) -> list[tuple[datetime, int]]:
    rng = random.Random(seed)
    # Few distinct seconds, so many rows share a timestamp within and across projects.
    return [(T0 + timedelta(seconds=rng.randrange(20)), key) for key in range(1, n + 1)]


def _all_pages(agg: Aggregator, query: JobQuery) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        page = agg.list(query, cursor)
        seen += [(job.project, job.id) for job in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen


@pytest.mark.parametrize("order", ["newest", "oldest"])
@pytest.mark.parametrize("limit", [1, 3, 7, 50])
def test_paging_across_projects_returns_every_row_once_in_order(order: str, limit: int) -> None:
    readers = {key: MemoryReader(key, _rows(i, 25)) for i, key in enumerate(["a", "b", "c"])}
    agg = Aggregator(readers)
    try:
        seen = _all_pages(agg, JobQuery(limit=limit, order=order))  # type: ignore[arg-type]
    finally:
        agg.close()
    assert len(seen) == 75
    assert len(set(seen)) == 75
    times = [next(j.failed_at for j in readers[p].jobs if j.id == i) for p, i in seen]
    assert times == sorted(times, reverse=order == "newest")


@pytest.mark.parametrize("order", ["newest", "oldest"])
@pytest.mark.parametrize("limit", [1, 3, 7, 50])
def test_two_step_pages_equal_one_step_pages(order: str, limit: int) -> None:
    # Keyed readers beside a plain one: the pages are the same rows, cursor for cursor.
    def fleet(keyed: bool) -> Aggregator:
        kind = KeyedMemoryReader if keyed else MemoryReader
        readers = {key: kind(key, _rows(i, 25)) for i, key in enumerate(["a", "b"])}
        readers["c"] = MemoryReader("c", _rows(2, 25))
        return Aggregator(readers)

    one, two = fleet(False), fleet(True)
    try:
        query = JobQuery(limit=limit, order=order)
        assert _all_pages(two, query) == _all_pages(one, query)
    finally:
        one.close()
        two.close()


def test_two_steps_fetch_only_the_page_rows() -> None:
    readers = {key: KeyedMemoryReader(key, _rows(i, 60)) for i, key in enumerate(["a", "b"])}
    agg = Aggregator(readers)
    try:
        page = agg.list(JobQuery(limit=10))
    finally:
        agg.close()
    assert len(page.items) == 10 and page.next_cursor
    fetched = [key for reader in readers.values() for call in reader.fetched for key in call]
    assert sorted(fetched) == sorted(job.sort_key for job in page.items)
    assert all(len(reader.fetched) <= 1 for reader in readers.values())


def test_a_row_gone_between_the_steps_is_left_out_and_paging_goes_on() -> None:
    reader = KeyedMemoryReader("a", [(T0 + timedelta(seconds=i), i) for i in range(1, 21)])
    agg = Aggregator({"a": reader})
    try:
        reader.vanish = {"20", "16"}  # the newest, and the last of the first page
        first = agg.list(JobQuery(limit=5))
        assert [job.id for job in first.items] == ["19", "18", "17"]
        second = agg.list(JobQuery(limit=5), first.next_cursor)
        assert [job.id for job in second.items] == ["15", "14", "13", "12", "11"]
    finally:
        agg.close()


def test_a_slow_fetch_is_cut_near_the_store_timeout_and_reported() -> None:
    slow = KeyedMemoryReader("slow", _rows(1, 10))
    fast = KeyedMemoryReader("fast", _rows(2, 10))
    fetch = slow.fetch

    def sleepy(sort_keys: Sequence[str]) -> list[FailedJob]:
        time.sleep(5)
        return fetch(sort_keys)

    slow.fetch = sleepy  # type: ignore[method-assign]
    agg = Aggregator({"slow": slow, "fast": fast}, timeout=1.0)
    try:
        started = time.monotonic()
        page = agg.list(JobQuery(limit=10))
        # Cut near the 1 s timeout, well before the 5 s fetch would have answered (the margin
        # is for a busy machine; the point is that the page does not wait for the fetch).
        assert time.monotonic() - started < 4
    finally:
        agg.close()
    assert page.items and {job.project for job in page.items} == {"fast"}
    assert [e.project for e in page.errors] == ["slow"]


def test_an_unreachable_project_is_reported_and_the_others_answer() -> None:
    readers = {
        "ok": MemoryReader("ok", _rows(1, 5)),
        "down": MemoryReader("down", _rows(2, 5), fail=True),
    }
    agg = Aggregator(readers, timeout=1)
    page = agg.list(JobQuery())
    agg.close()
    assert {job.project for job in page.items} == {"ok"}
    assert [e.project for e in page.errors] == ["down"]
    assert "cannot connect" in page.errors[0].error


def test_a_slow_project_times_out_without_holding_the_page() -> None:
    readers = {
        "ok": MemoryReader("ok", _rows(1, 5)),
        "slow": MemoryReader("slow", _rows(2, 5), delay=5.0),
    }
    agg = Aggregator(readers, timeout=1.0)
    page = agg.list(JobQuery())
    agg.close()
    assert len(page.items) == 5
    assert page.errors[0].project == "slow"
    assert "timed out" in page.errors[0].error


def test_unknown_project_and_bad_cursor() -> None:
    agg = Aggregator({"a": MemoryReader("a", _rows(1, 3))})
    with pytest.raises(NotFound):
        agg.list(JobQuery(projects=("nope",)))
    with pytest.raises(InvalidRequest):
        agg.list(JobQuery(), cursor="not-a-cursor")
    cursor = agg.list(JobQuery(limit=1)).next_cursor
    with pytest.raises(InvalidRequest):
        agg.list(JobQuery(limit=1, order="oldest"), cursor=cursor)
    agg.close()

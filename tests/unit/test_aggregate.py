from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from failboard.aggregate import Aggregator
from failboard.exceptions import InvalidRequest, NotFound
from failboard.models import JobQuery
from tests.unit.memory import MemoryReader

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
        "slow": MemoryReader("slow", _rows(2, 5), delay=2.0),
    }
    agg = Aggregator(readers, timeout=0.2)
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

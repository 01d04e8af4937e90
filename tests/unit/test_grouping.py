"""Groups from a bounded sample: the row limit, the time budget, what is labelled exact, and the
short cache (pure logic over the in-memory reader; tests/integration/test_groups.py reads real
stores)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from failboard.aggregate import Aggregator
from failboard.grouping import GroupCache, scan_groups
from failboard.models import FailedJob, JobQuery
from tests.unit.memory import MemoryReader

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def _reader(project: str, count: int) -> MemoryReader:
    return MemoryReader(project, [(NOW - timedelta(seconds=i), i) for i in range(count)])


def test_a_store_read_to_the_end_gives_exact_counts() -> None:
    aggregator = Aggregator({"a": _reader("a", 450), "b": _reader("b", 30)}, timeout=10)
    scan = scan_groups(aggregator, ["a", "b"], None, seconds=60)
    assert scan.scanned == {"a": 450, "b": 30}
    assert scan.complete == {"a": True, "b": True} and scan.exact
    assert sum(g.count for g in scan.groups) == 480
    assert all(g.exact and g.to_json()["count_exact"] for g in scan.groups)


def test_the_row_limit_stops_a_big_store_and_every_count_says_so() -> None:
    aggregator = Aggregator({"big": _reader("big", 2_000), "small": _reader("small", 10)})
    scan = scan_groups(aggregator, ["big", "small"], None, limit=500, seconds=60)
    assert scan.scanned == {"big": 500, "small": 10}
    assert scan.complete == {"big": False, "small": True} and not scan.exact
    # The newest 500 of "big": the scan never reads past its sample.
    ids = {job_id for g in scan.groups for job_id in g.ids.get("big", [])}
    assert ids == {str(i) for i in range(500)}
    # "small" was read whole, but "big" may hold more of any group: none is exact.
    assert not any(g.to_json()["count_exact"] for g in scan.groups)


class _SlowReader(MemoryReader):
    """Each page costs ``cost`` seconds of a fake clock: the budget is tested without sleeping,
    so a busy machine cannot change what the test sees."""

    def __init__(self, project: str, count: int, cost: float) -> None:
        super().__init__(project, [(NOW - timedelta(seconds=i), i) for i in range(count)])
        self.now = 0.0
        self.cost = cost

    def list(self, query: JobQuery) -> list[FailedJob]:
        self.now += self.cost
        return super().list(query)


def test_the_time_budget_ends_the_scan_after_the_page_in_hand() -> None:
    reader = _SlowReader("slow", 5_000, cost=0.05)
    aggregator = Aggregator({"slow": reader}, timeout=10)
    scan = scan_groups(aggregator, ["slow"], None, seconds=0.12, clock=lambda: reader.now)
    # Pages end at 0.05, 0.10 and 0.15 s: the third one is past the budget, so the scan stops
    # there — with that page in hand, not thrown away.
    assert scan.scanned["slow"] == 300 and not scan.complete["slow"]
    assert not scan.exact and not any(g.exact for g in scan.groups)


def test_a_store_that_fails_is_an_error_not_a_group() -> None:
    aggregator = Aggregator({"ok": _reader("ok", 5), "down": MemoryReader("down", [], fail=True)})
    scan = scan_groups(aggregator, ["ok", "down"], None)
    assert [e.project for e in scan.errors] == ["down"]
    assert scan.scanned == {"ok": 5} and scan.exact


def test_the_cache_serves_one_scan_until_it_expires() -> None:
    reader = _reader("a", 20)
    aggregator = Aggregator({"a": reader}, timeout=10)
    now = [0.0]
    cache = GroupCache(ttl=10, clock=lambda: now[0])
    first, fresh = cache.get(aggregator, ["a"], None)
    assert fresh
    reader.jobs = reader.jobs[:5]  # failures retried meanwhile
    again, fresh = cache.get(aggregator, ["a"], None)
    assert again is first and not fresh
    # Another time range is another scan; so is the same one after the TTL.
    since, fresh = cache.get(aggregator, ["a"], NOW - timedelta(hours=1))
    assert fresh and since is not first
    now[0] = 9.9
    assert cache.get(aggregator, ["a"], None) == (first, False)
    now[0] = 10.0  # the TTL has passed
    later, fresh = cache.get(aggregator, ["a"], None)
    assert fresh and sum(g.count for g in later.groups) == 5

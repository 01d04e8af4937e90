"""Groups from a bounded sample: the row limit, the time budget, what is labelled exact, and the
short cache (pure logic over the in-memory reader; tests/integration/test_groups.py reads real
stores)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from failboard.aggregate import Aggregator
from failboard.grouping import GroupCache, scan_groups
from tests.unit.memory import MemoryReader

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def _reader(project: str, count: int, delay: float = 0.0) -> MemoryReader:
    return MemoryReader(
        project, [(NOW - timedelta(seconds=i), i) for i in range(count)], delay=delay
    )


def test_a_store_read_to_the_end_gives_exact_counts() -> None:
    aggregator = Aggregator({"a": _reader("a", 450), "b": _reader("b", 30)}, timeout=10)
    scan = scan_groups(aggregator, ["a", "b"], None)
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


def test_the_time_budget_ends_the_scan_after_the_page_in_hand() -> None:
    aggregator = Aggregator({"slow": _reader("slow", 5_000, delay=0.05)}, timeout=10)
    started = time.monotonic()
    scan = scan_groups(aggregator, ["slow"], None, seconds=0.12)
    elapsed = time.monotonic() - started
    assert elapsed < 0.12 + 0.15  # the budget, plus at most the page that was being read
    assert 100 <= scan.scanned["slow"] < 5_000 and not scan.complete["slow"]


def test_a_store_that_fails_is_an_error_not_a_group() -> None:
    aggregator = Aggregator({"ok": _reader("ok", 5), "down": MemoryReader("down", [], fail=True)})
    scan = scan_groups(aggregator, ["ok", "down"], None)
    assert [e.project for e in scan.errors] == ["down"]
    assert scan.scanned == {"ok": 5} and scan.exact


def test_the_cache_serves_one_scan_until_it_expires() -> None:
    reader = _reader("a", 20)
    aggregator = Aggregator({"a": reader}, timeout=10)
    cache = GroupCache(ttl=0.2)
    first, fresh = cache.get(aggregator, ["a"], None)
    assert fresh
    reader.jobs = reader.jobs[:5]  # failures retried meanwhile
    again, fresh = cache.get(aggregator, ["a"], None)
    assert again is first and not fresh
    # Another time range is another scan; so is the same one after the TTL.
    since, fresh = cache.get(aggregator, ["a"], NOW - timedelta(hours=1))
    assert fresh and since is not first
    time.sleep(0.25)
    later, fresh = cache.get(aggregator, ["a"], None)
    assert fresh and sum(g.count for g in later.groups) == 5

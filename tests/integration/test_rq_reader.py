"""The rq reader's paging on the real Redis: bursts that share a second, many queues, the
aggregator's merged cursor across projects, filters, counts, and an unreachable Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from failboard.aggregate import Aggregator
from failboard.config import ProjectSettings
from failboard.drivers import registry
from failboard.exceptions import StoreUnreachable
from failboard.models import FailedJob, JobQuery, Seek, to_utc
from tests.rq_jobs import fresh_prefix, plant

NOW = datetime.now(UTC).replace(microsecond=0)


def _plant_many(client: object, prefix: str, count: int, seed: int) -> list[tuple[datetime, str]]:
    """``count`` failures over three queues; most share their second with others."""
    made = []
    for i in range(count):
        queue = ("emails", "payments", "reports")[(i * 7 + seed) % 3]
        at = NOW - timedelta(seconds=(i * 13 + seed) % 11)
        job_id = str(uuid.uuid4())
        exc = "ValueError" if i % 4 else "KeyError"
        plant(client, prefix, queue, f"app.jobs.job{i % 5}", exc, f"bad {i}", at, job_id)
        made.append((at, job_id))
    return made


def _reader(url: str, prefix: str, key: str = "shop"):  # type: ignore[no-untyped-def]
    project = ProjectSettings.model_validate(
        {"key": key, "driver": "rq", "url": url, "prefix": prefix}
    )
    return registry.make_reader(project, 5.0)


def _walk(reader: object, query: JobQuery) -> list[FailedJob]:
    seen: list[FailedJob] = []
    while True:
        page = reader.list(query)  # type: ignore[attr-defined]
        seen += page
        if len(page) < query.limit:
            return seen
        last = page[-1]
        query = query.model_copy(
            update={"seek": Seek(failed_at=last.failed_at, sort_key=last.sort_key)}
        )


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_pages_through_bursts_without_loss_or_repeat(order: str) -> None:
    with fresh_prefix() as (client, url, prefix):
        made = _plant_many(client, prefix, 120, 0)
        reader = _reader(url, prefix)
        for limit in (1, 7, 50):
            jobs = _walk(reader, JobQuery(limit=limit, order=order))  # type: ignore[arg-type]
            assert sorted(j.id for j in jobs) == sorted(job_id for _, job_id in made)
            keys = [(to_utc(j.failed_at).timestamp(), j.sort_key) for j in jobs if j.failed_at]
            assert keys == sorted(keys, reverse=order == "newest")
        assert reader.count(JobQuery()).value == 120
        assert reader.count(JobQuery(), cap=100).capped
        reader.close()


def test_the_aggregator_merges_two_rq_projects_without_loss() -> None:
    with fresh_prefix() as (client, url, one), fresh_prefix() as (_, _, two):
        made = _plant_many(client, one, 60, 1) + _plant_many(client, two, 60, 2)
        aggregator = Aggregator({"a": _reader(url, one, "a"), "b": _reader(url, two, "b")}, 5.0)
        seen: list[str] = []
        cursor = None
        while True:
            page = aggregator.list(JobQuery(limit=9), cursor)
            assert not page.errors
            seen += [job.id for job in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        aggregator.close()
        assert sorted(seen) == sorted(job_id for _, job_id in made)
        assert len(seen) == len(set(seen))


def test_filters_and_time_range() -> None:
    with fresh_prefix() as (client, url, prefix):
        _plant_many(client, prefix, 40, 0)
        reader = _reader(url, prefix)
        keys = reader.list(JobQuery(exception="KeyError", limit=500))
        assert len(keys) == 10 and all(j.exception_class == "KeyError" for j in keys)
        named = reader.list(JobQuery(name="app.jobs.job3", limit=500))
        assert len(named) == 8 and all(j.name == "app.jobs.job3" for j in named)
        assert reader.count(JobQuery(name="app.jobs.job3")).value == 8
        assert len(reader.list(JobQuery(q="BAD 17"))) == 1
        since = NOW - timedelta(seconds=3)
        recent = reader.list(JobQuery(failed_after=since, limit=500))
        assert recent and all(to_utc(j.failed_at) >= since for j in recent)
        assert reader.count(JobQuery(failed_after=since)).value == len(recent)
        assert reader.list(JobQuery(connection="redis")) == []
        reader.close()


def test_expired_failures_and_other_prefixes_are_not_shown() -> None:
    with fresh_prefix() as (client, url, prefix), fresh_prefix() as (_, _, other):
        plant(client, prefix, "q", "app.f", "E", "old", NOW - timedelta(days=400), "expired")
        plant(client, other, "q", "app.f", "E", "theirs", NOW, "theirs")
        plant(client, prefix, "q", "app.f", "E", "mine", NOW, "mine")
        reader = _reader(url, prefix)
        assert [j.id for j in reader.list(JobQuery())] == ["mine"]
        assert reader.get("theirs") is None
        reader.close()


def test_an_unreachable_redis_is_a_clear_error() -> None:
    reader = _reader("redis://:secret@127.0.0.1:1/0", "rq:")
    with pytest.raises(StoreUnreachable) as caught:
        reader.list(JobQuery())
    assert "cannot reach Redis" in caught.value.message
    assert "secret" not in caught.value.message

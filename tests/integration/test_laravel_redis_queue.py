"""Retrying onto Laravel's Redis queue, against a real Redis and real PostgreSQL, MariaDB and
SQLite: the keys, lists and rows ``php artisan queue:retry`` would leave behind."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from failboard.db import create_engine
from failboard.drivers.laravel import LaravelExecutor, Options
from failboard.drivers.laravel.payload import build_payload, php_json_encode, reset_for_retry
from failboard.drivers.laravel.redis_queue import PUSH_SCRIPT, has_hash_tag
from failboard.drivers.laravel.schema import create_tables, insert_failed_jobs
from failboard.exceptions import StoreUnreachable
from failboard.models import ActionResult
from tests.rq_jobs import fresh_prefix

T0 = datetime(2026, 3, 1, 12, 0, 0)
NOW = 1_800_000_000


class Project:
    """A Laravel application's database (failed_jobs, jobs) and its Redis, under a prefix."""

    def __init__(self, url: str, client: Any, redis_url: str, prefix: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        create_tables(self.engine)
        self.client = client
        self.redis_url = redis_url
        self.prefix = f"{prefix}laravel_database_"  # Laravel's default key prefix, made unique

    def add(
        self, queue: str = "default", *, connection: str = "redis", at: datetime = T0, **build: Any
    ) -> str:
        job_uuid = str(uuid.uuid4())
        # What RedisQueue::createPayloadArray writes; the failed copy has attempts incremented
        # by the pop script (the worker failed it on its third try here).
        payload = build_payload(
            "App\\Jobs\\SendInvoice", uuid=job_uuid, redis=connection == "redis", **build
        )
        if connection == "redis":
            payload["attempts"] = 3
        with self.engine.begin() as conn:
            insert_failed_jobs(
                conn,
                [
                    {
                        "uuid": job_uuid,
                        "connection": connection,
                        "queue": queue,
                        "payload": php_json_encode(payload),
                        "exception": "RuntimeException: boom in /app/x.php:1",
                        "failed_at": at,
                    }
                ],
            )
        return job_uuid

    def payload(self, job_uuid: str) -> str:
        with self.engine.connect() as conn:
            return str(
                conn.execute(
                    sa.text("SELECT payload FROM failed_jobs WHERE uuid = :u"), {"u": job_uuid}
                ).scalar_one()
            )

    def failed(self) -> set[str]:
        with self.engine.connect() as conn:
            return {str(u) for u in conn.execute(sa.text("SELECT uuid FROM failed_jobs")).scalars()}

    def jobs(self) -> list[str]:
        with self.engine.connect() as conn:
            return [str(q) for q in conn.execute(sa.text("SELECT queue FROM jobs")).scalars()]

    def keys(self) -> set[str]:
        return {k.decode() for k in self.client.scan_iter(match=f"{self.prefix}*", count=1000)}

    def list(self, key: str) -> list[str]:
        return [item.decode() for item in self.client.lrange(f"{self.prefix}{key}", 0, -1)]

    def executor(self, batch_size: int = 1_000, **options: Any) -> LaravelExecutor:
        settings = {"redis_url": self.redis_url, "redis_prefix": self.prefix, **options}
        return LaravelExecutor(
            "shop", self.url, Options(**settings), batch_size=batch_size, clock=lambda: NOW
        )


@pytest.fixture
def project(db_url: str) -> Iterator[Project]:
    with fresh_prefix() as (client, redis_url, prefix):
        p = Project(db_url, client, redis_url, prefix)
        yield p
        p.engine.dispose()


def _run(project: Project, action: str, *args: Any, **options: Any) -> ActionResult:
    executor = project.executor(**options)
    try:
        result: ActionResult = getattr(executor, action)(*args)
        return result
    finally:
        executor.close()


def test_retry_pushes_like_redis_queue_push_raw(project: Project) -> None:
    plain = project.add("emails", max_tries=3, created_at=NOW - 100)
    windowed = project.add("emails", retry_until=NOW - 100 + 600, created_at=NOW - 100)
    other = project.add("reports")
    before = {job: project.payload(job) for job in (plain, windowed, other)}

    assert _run(project, "retry", [plain, windowed, other]) == ActionResult(succeeded=3)

    # Exactly the keys RedisQueue::pushRaw writes, and nothing else.
    assert project.keys() == {
        f"{project.prefix}queues:emails",
        f"{project.prefix}queues:emails:notify",
        f"{project.prefix}queues:reports",
        f"{project.prefix}queues:reports:notify",
    }
    emails = project.list("queues:emails")
    assert emails == [reset_for_retry(before[plain], NOW), reset_for_retry(before[windowed], NOW)]
    assert project.list("queues:emails:notify") == ["1", "1"]
    assert project.list("queues:reports:notify") == ["1"]
    first, second = (json.loads(p) for p in emails)
    # Same job (uuid and Redis id kept), attempts reset, the retryUntil window moved to now.
    original = json.loads(before[plain])
    assert first["uuid"] == plain and first["id"] == original["id"] and first["attempts"] == 0
    assert second["retryUntil"] == NOW + 600
    assert project.failed() == set() and project.jobs() == []


def test_retried_payload_is_what_a_laravel_worker_pops(project: Project) -> None:
    job = project.add("default")
    assert _run(project, "retry", [job]) == ActionResult(succeeded=1)
    # Laravel's LuaScripts::pop: LPOP, attempts + 1, ZADD to :reserved. Run it for real.
    pop = """
local job = redis.call('lpop', KEYS[1])
local reserved = false
if(job ~= false) then
    reserved = cjson.decode(job)
    reserved['attempts'] = reserved['attempts'] + 1
    reserved = cjson.encode(reserved)
    redis.call('zadd', KEYS[2], ARGV[1], reserved)
    redis.call('lpop', KEYS[3])
end
return {job, reserved}
"""
    key = f"{project.prefix}queues:default"
    raw, reserved = project.client.eval(pop, 3, key, f"{key}:reserved", f"{key}:notify", NOW + 60)
    assert json.loads(raw)["uuid"] == job and json.loads(reserved)["attempts"] == 1


def test_cluster_connections_use_hash_tags(project: Project) -> None:
    plain = project.add("emails")
    tagged = project.add("{billing}:high")
    assert has_hash_tag("{billing}:high") and not has_hash_tag("emails")
    assert _run(project, "retry", [plain, tagged], redis_cluster=True) == ActionResult(succeeded=2)
    assert project.keys() == {
        f"{project.prefix}queues:{{emails}}",
        f"{project.prefix}queues:{{emails}}:notify",
        f"{project.prefix}queues:{{billing}}:high",
        f"{project.prefix}queues:{{billing}}:high:notify",
    }


def test_each_job_goes_to_its_own_connection(project: Project) -> None:
    on_redis = project.add("emails", connection="redis")
    on_db = project.add("emails", connection="database")
    on_second_redis = project.add("emails", connection="redis-eu")
    result = _run(
        project,
        "retry",
        [on_redis, on_db, on_second_redis],
        redis_connections=["redis", "redis-eu"],
    )
    assert result == ActionResult(succeeded=3)
    assert project.jobs() == ["emails"]
    assert [json.loads(p)["uuid"] for p in project.list("queues:emails")] == [
        on_redis,
        on_second_redis,
    ]


def test_redis_down_changes_nothing(project: Project) -> None:
    job = project.add()
    db_job = project.add(connection="database")
    executor = LaravelExecutor(
        "shop",
        project.url,
        Options(redis_url="redis://127.0.0.1:1/0", redis_prefix=project.prefix),
        clock=lambda: NOW,
    )
    try:
        with pytest.raises(StoreUnreachable, match="project shop: cannot reach Redis"):
            executor.retry([job, db_job])
    finally:
        executor.close()
    # The whole batch rolled back: the database job was not pushed either.
    assert project.failed() == {job, db_job} and project.jobs() == []


def test_retry_queue_and_prune_on_redis_jobs(project: Project) -> None:
    old = [project.add("emails", at=T0 - timedelta(hours=h)) for h in (1, 2, 3)]
    late = project.add("emails", at=T0 + timedelta(minutes=5))
    other = project.add("reports", at=T0 - timedelta(hours=1))
    executor = project.executor(batch_size=2)
    try:
        assert executor.retry_queue("emails", T0.replace(tzinfo=UTC)) == ActionResult(succeeded=3)
        assert executor.prune((T0 - timedelta(minutes=30)).replace(tzinfo=UTC)) == ActionResult(
            succeeded=1
        )
    finally:
        executor.close()
    # Newest row first, as queue:retry --queue (failer->all() is ORDER BY id DESC).
    assert [json.loads(p)["uuid"] for p in project.list("queues:emails")] == old[::-1]
    assert project.failed() == {late} and other not in project.failed()
    assert project.list("queues:reports") == []


def test_concurrent_retries_push_each_job_once(project: Project) -> None:
    ids = [project.add(f"q{i % 3}") for i in range(45)]
    results: list[ActionResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run(order: list[str]) -> None:
        executor = project.executor(batch_size=7)
        try:
            start.wait()
            results.append(executor.retry(order))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            executor.close()

    threads = [threading.Thread(target=run, args=(order,)) for order in (ids, ids[::-1], ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(r.succeeded for r in results) == 45
    pushed = [
        json.loads(p)["uuid"] for q in ("q0", "q1", "q2") for p in project.list(f"queues:{q}")
    ]
    assert sorted(pushed) == sorted(ids)
    notifies = sum(len(project.list(f"queues:{q}:notify")) for q in ("q0", "q1", "q2"))
    assert notifies == 45 and project.failed() == set()


def test_push_script_is_laravels() -> None:
    assert PUSH_SCRIPT.splitlines() == [
        "-- Push the job onto the queue...",
        "redis.call('rpush', KEYS[1], ARGV[1])",
        '-- Push a notification onto the "notify" queue...',
        "redis.call('rpush', KEYS[2], 1)",
    ]

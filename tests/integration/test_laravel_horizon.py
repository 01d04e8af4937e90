"""A Laravel application with Horizon, against a real Redis and real PostgreSQL, MariaDB and
SQLite: what Horizon's retry button and ``php artisan horizon:forget`` leave in Horizon's Redis
records, in the Redis queue and in ``failed_jobs``."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from failboard.db import create_engine
from failboard.drivers.laravel import LaravelExecutor, Options
from failboard.drivers.laravel.horizon import php_microtime
from failboard.drivers.laravel.payload import build_payload, php_json_encode
from failboard.drivers.laravel.schema import create_tables, insert_failed_jobs
from failboard.models import ActionResult
from tests.rq_jobs import fresh_prefix

NOW = 1_800_000_000.25
FAILED_AT = 1_799_990_000.5  # when the worker failed the job, microtime
TRIM_FAILED = 10080  # horizon.trim.failed, minutes


class HorizonApp:
    """The stores of a Horizon application: failed_jobs/jobs tables, the Redis queue under the
    database prefix, Horizon's records under the Horizon prefix (one Redis, as by default)."""

    def __init__(self, url: str, client: Any, redis_url: str, prefix: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        create_tables(self.engine)
        self.client = client
        self.redis_url = redis_url
        self.queue_prefix = f"{prefix}laravel_database_"
        self.horizon_prefix = f"{prefix}laravel_horizon:"

    def fail(
        self,
        queue: str = "default",
        *,
        in_horizon: bool = True,
        in_table: bool = True,
        tags: tuple[str, ...] = ("App\\Models\\Invoice:7",),
        **build: Any,
    ) -> tuple[str, str]:
        """A job Horizon ran and failed: ``RedisJobRepository::failed`` and the failer's row."""
        job_uuid = str(uuid.uuid4())
        payload = build_payload(
            "App\\Jobs\\SendInvoice",
            uuid=job_uuid,
            horizon=True,
            tags=tags,
            pushed_at=FAILED_AT - 30,
            **build,
        )
        payload["id"] = job_uuid  # Horizon's RedisQueue: the Redis id is the uuid
        payload["attempts"] = 3
        text = php_json_encode(payload, unescaped_unicode=False)
        h = self.horizon_prefix
        if in_horizon:
            pipe = self.client.pipeline()
            score = php_microtime(-FAILED_AT)
            pipe.zadd(f"{h}failed_jobs", {job_uuid: score})
            pipe.zadd(f"{h}recent_failed_jobs", {job_uuid: score})
            pipe.hset(
                f"{h}{job_uuid}",
                mapping={
                    "id": job_uuid,
                    "connection": "redis",
                    "queue": queue,
                    "name": "App\\Jobs\\SendInvoice",
                    "status": "failed",
                    "payload": text,
                    "exception": "RuntimeException: boom in /app/x.php:1",
                    "context": "[]",
                    "failed_at": php_microtime(FAILED_AT),
                },
            )
            pipe.expireat(f"{h}{job_uuid}", int(FAILED_AT) + TRIM_FAILED * 60)
            pipe.execute()
        if in_table:
            with self.engine.begin() as conn:
                insert_failed_jobs(
                    conn,
                    [
                        {
                            "uuid": job_uuid,
                            "connection": "redis",
                            "queue": queue,
                            "payload": text,
                            "exception": "RuntimeException: boom in /app/x.php:1",
                            "failed_at": datetime.fromtimestamp(int(FAILED_AT)),
                        }
                    ],
                )
        return job_uuid, text

    def executor(self, batch_size: int = 1_000, **options: Any) -> LaravelExecutor:
        settings = {
            "redis_url": self.redis_url,
            "redis_prefix": self.queue_prefix,
            "horizon": True,
            "horizon_prefix": self.horizon_prefix,
            **options,
        }
        return LaravelExecutor(
            "shop", self.url, Options(**settings), batch_size=batch_size, clock=lambda: NOW
        )

    def run(self, action: str, *args: Any, **options: Any) -> ActionResult:
        executor = self.executor(**options)
        try:
            result: ActionResult = getattr(executor, action)(*args)
            return result
        finally:
            executor.close()

    def table(self) -> set[str]:
        with self.engine.connect() as conn:
            return {str(u) for u in conn.execute(sa.text("SELECT uuid FROM failed_jobs")).scalars()}

    def hash(self, job_id: str) -> dict[str, str]:
        raw = self.client.hgetall(f"{self.horizon_prefix}{job_id}")
        return {k.decode(): v.decode() for k, v in raw.items()}

    def zset(self, name: str) -> list[str]:
        return [m.decode() for m in self.client.zrange(f"{self.horizon_prefix}{name}", 0, -1)]

    def queue(self, name: str) -> list[dict[str, Any]]:
        key = f"{self.queue_prefix}queues:{name}"
        return [json.loads(p) for p in self.client.lrange(key, 0, -1)]


@pytest.fixture
def app(db_url: str) -> Iterator[HorizonApp]:
    with fresh_prefix() as (client, redis_url, prefix):
        a = HorizonApp(db_url, client, redis_url, prefix)
        yield a
        a.engine.dispose()


def test_retry_is_horizons_retry(app: HorizonApp) -> None:
    job, original_payload = app.fail("emails", retry_until=int(FAILED_AT) + 570)
    app.client.sadd(f"{app.horizon_prefix}monitoring", "App\\Models\\Invoice:7")

    assert app.run("retry", [job]) == ActionResult(succeeded=1)

    # The original stays failed in Horizon, with the retry recorded on it.
    original = app.hash(job)
    assert original["status"] == "failed" and original["payload"] == original_payload
    (retry,) = json.loads(original["retried_by"])
    new_id = retry["id"]
    assert retry == {"id": new_id, "status": "pending", "retried_at": int(NOW)}
    assert app.zset("failed_jobs") == [job] and app.zset("recent_failed_jobs") == [job]

    # A new job (new uuid) on the queue: RetryFailedJob::preparePayload + JobPayload::prepare.
    (pushed,) = app.queue("emails")
    before = json.loads(original_payload)
    assert new_id != job
    assert pushed["uuid"] == pushed["id"] == new_id and pushed["retry_of"] == job
    assert pushed["attempts"] == 0 and pushed["type"] == "job"
    assert pushed["tags"] == ["App\\Models\\Invoice:7"] and pushed["pushedAt"] == "1800000000.25"
    # retryUntil: now + ceil(retryUntil - pushedAt) of the original push = now + 600
    assert pushed["retryUntil"] == int(NOW) + 600
    assert {k: v for k, v in pushed.items() if k not in _CHANGED} == {
        k: v for k, v in before.items() if k not in _CHANGED
    }
    assert list(pushed)[: len(before)] == list(before)  # array_merge keeps the key order
    notify = app.client.lrange(f"{app.queue_prefix}queues:emails:notify", 0, -1)
    assert notify == [b"1"]

    # JobPushed listeners: the new job is recorded as pending, and in its monitored tag.
    record = app.hash(new_id)
    assert record == {
        "id": new_id,
        "connection": "redis",
        "queue": "emails",
        "name": "App\\Jobs\\SendInvoice",
        "status": "pending",
        "payload": json.dumps(pushed, separators=(",", ":")).replace("/", "\\/"),
        "created_at": "1800000000.25",
        "updated_at": "1800000000.25",
    }
    assert app.client.ttl(f"{app.horizon_prefix}{new_id}") > 0
    assert app.zset("recent_jobs") == [new_id] and app.zset("pending_jobs") == [new_id]
    assert app.zset("App\\Models\\Invoice:7") == [new_id]
    # The failer's row is gone, so the job cannot be retried twice from the table.
    assert app.table() == set()


_CHANGED = {"id", "uuid", "attempts", "retry_of", "retryUntil", "type", "tags", "pushedAt"}


def test_retry_of_a_job_horizon_has_trimmed_is_queue_retry(app: HorizonApp) -> None:
    job, _ = app.fail("emails", in_horizon=False)
    assert app.run("retry", [job]) == ActionResult(succeeded=1)
    (pushed,) = app.queue("emails")
    # queue:retry through Horizon's pushRaw: the same uuid, attempts reset, prepared.
    assert pushed["uuid"] == job and pushed["attempts"] == 0 and "retry_of" not in pushed
    assert pushed["pushedAt"] == "1800000000.25"
    assert app.hash(job)["status"] == "pending" and app.zset("pending_jobs") == [job]
    assert app.table() == set()


def test_forget_is_horizon_forget(app: HorizonApp) -> None:
    both, _ = app.fail()
    horizon_only, _ = app.fail(in_table=False)
    table_only, _ = app.fail(in_horizon=False)
    keep, _ = app.fail()
    result = app.run("delete", [both, horizon_only, table_only, "gone-uuid"])
    assert result == ActionResult(succeeded=3, missing=1)
    assert app.zset("failed_jobs") == [keep]
    assert app.hash(both) == {} and app.hash(horizon_only) == {}
    # horizon:forget leaves recent_failed_jobs to Horizon's trim, as Horizon does.
    assert set(app.zset("recent_failed_jobs")) == {both, horizon_only, keep}
    assert app.table() == {keep}


def test_retry_queue_on_horizon(app: HorizonApp) -> None:
    jobs = [app.fail("emails")[0] for _ in range(3)]
    other, _ = app.fail("reports")
    executor = app.executor(batch_size=2)
    try:
        result = executor.retry_queue("emails", datetime.fromtimestamp(NOW).astimezone())
    finally:
        executor.close()
    assert result == ActionResult(succeeded=3)
    assert sorted(p["retry_of"] for p in app.queue("emails")) == sorted(jobs)
    assert app.table() == {other} and app.queue("reports") == []
    assert all(json.loads(app.hash(j)["retried_by"])[0]["status"] == "pending" for j in jobs)


def test_concurrent_horizon_retries_push_each_job_once(app: HorizonApp) -> None:
    ids = [app.fail(f"q{i % 2}")[0] for i in range(20)]
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run(order: list[str]) -> None:
        executor = app.executor(batch_size=3)
        try:
            start.wait()
            executor.retry(order)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            executor.close()

    threads = [threading.Thread(target=run, args=(o,)) for o in (ids, ids[::-1], ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    pushed = [p["retry_of"] for q in ("q0", "q1") for p in app.queue(q)]
    assert sorted(pushed) == sorted(ids)
    assert all(len(json.loads(app.hash(j)["retried_by"])) == 1 for j in ids)


def _reader(app: HorizonApp, **options: Any) -> Any:
    from failboard.drivers.laravel import HorizonReader

    settings = {
        "redis_url": app.redis_url,
        "horizon": True,
        "horizon_prefix": app.horizon_prefix,
        "horizon_source": "horizon",
        **options,
    }
    return HorizonReader("shop", Options(**settings))


def _plant_at(app: HorizonApp, moment: float, queue: str = "default", **fail: Any) -> str:
    """A failure Horizon recorded at ``moment`` (microtime)."""
    job, _ = app.fail(queue, in_table=False, **fail)
    h = app.horizon_prefix
    app.client.zadd(f"{h}failed_jobs", {job: php_microtime(-moment)})
    app.client.hset(f"{h}{job}", "failed_at", php_microtime(moment))
    return job


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_horizon_source_lists_pages_and_filters(app: HorizonApp) -> None:
    from failboard.models import JobQuery, Seek

    base = 1_799_000_000.0
    ids = [_plant_at(app, base + i * 10.5, "emails" if i % 2 else "reports") for i in range(7)]
    tie_a = _plant_at(app, base + 100.25)
    tie_b = _plant_at(app, base + 100.25)
    retried = _plant_at(app, base + 200)
    app.client.hset(f"{app.horizon_prefix}{retried}", "retried_by", '[{"id":"x"}]')
    reader = _reader(app)
    try:
        newest = [job.id for job in reader.list(JobQuery(limit=50))]
        expected = sorted([tie_a, tie_b], reverse=True) + ids[::-1]
        assert newest == expected  # retried jobs are not listed
        seen: list[str] = []
        query = JobQuery(limit=2)
        while True:
            page = reader.list(query)
            seen += [job.id for job in page]
            if len(page) < 2:
                break
            last = page[-1]
            query = query.model_copy(
                update={"seek": Seek(failed_at=last.failed_at, sort_key=last.sort_key)}
            )
        assert seen == expected
        oldest = [job.id for job in reader.list(JobQuery(order="oldest"))]
        assert oldest == expected[::-1]
        emails = reader.list(JobQuery(queue="emails"))
        assert [j.id for j in emails] == [ids[5], ids[3], ids[1]]
        assert reader.count(JobQuery(queue="emails")).value == 3
        assert reader.count(JobQuery(), cap=4).capped
        assert reader.queues() == ["default", "emails", "reports"]
        assert len(reader.list(JobQuery(name="app\\jobs\\sendinvoice"))) == 9
        assert reader.list(JobQuery(exception="nothing like it")) == []
        assert len(reader.list(JobQuery(q="App\\Models\\Invoice"))) == 9
        window = reader.list(
            JobQuery(
                failed_after=datetime.fromtimestamp(base + 20, UTC),
                failed_before=datetime.fromtimestamp(base + 50, UTC),
            )
        )
        assert [j.id for j in window] == [ids[4], ids[3], ids[2]]
        detail = reader.get(ids[0])
        assert detail is not None and detail.name == "App\\Jobs\\SendInvoice"
        assert detail.extra["tags"] == ["App\\Models\\Invoice:7"]
        assert detail.extra["horizon_status"] == "failed" and detail.attempts == 3
        assert detail.failed_at == datetime.fromtimestamp(base, UTC)
        assert reader.get("no-such-job") is None
        reader.ping()
    finally:
        reader.close()


def test_horizon_only_jobs_are_retried_once(app: HorizonApp) -> None:
    only = [app.fail("emails", in_table=False)[0] for _ in range(6)]
    errors: list[BaseException] = []
    results: list[ActionResult] = []
    start = threading.Barrier(2)

    def run() -> None:
        executor = app.executor(batch_size=2, horizon_source="horizon")
        try:
            start.wait()
            results.append(executor.retry(only))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            executor.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(r.succeeded for r in results) == 6 and sum(r.missing for r in results) == 6
    assert sorted(p["retry_of"] for p in app.queue("emails")) == sorted(only)


def test_table_detail_shows_horizons_record(app: HorizonApp) -> None:
    from failboard.drivers.laravel import LaravelReader

    job, _ = app.fail()
    app.client.hset(f"{app.horizon_prefix}{job}", "retried_by", '[{"id":"r1","status":"failed"}]')
    options = Options(redis_url=app.redis_url, horizon=True, horizon_prefix=app.horizon_prefix)
    reader = LaravelReader("shop", app.url, options)
    try:
        detail = reader.get(job)
    finally:
        reader.close()
    assert detail is not None
    assert detail.extra["horizon_status"] == "failed"
    assert detail.extra["retried_by"] == [{"id": "r1", "status": "failed"}]
    assert detail.extra["tags"] == ["App\\Models\\Invoice:7"]


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize("source", ["table", "horizon"])
def test_list_view_retry_delete_through_the_spool_and_the_agent(
    app: HorizonApp, source: str, tmp_path: Any
) -> None:
    from fastapi.testclient import TestClient

    from failboard.agent import Agent
    from failboard.board import Board
    from failboard.config import parse_settings
    from failboard.drivers import registry
    from failboard.web import create_app

    retried, _ = app.fail("emails")
    forgotten, _ = app.fail("emails")
    text = (
        f'[spool]\nurl = "{app.url}"\nlease_seconds = 30\n'
        f'[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "{app.url}"\n'
        f'redis_url = "{app.redis_url}"\nredis_prefix = "{app.queue_prefix}"\n'
        f'horizon = true\nhorizon_prefix = "{app.horizon_prefix}"\n'
        f'horizon_source = "{source}"\n'
    )
    (tmp_path / "failboard.toml").write_text(text)
    settings = parse_settings(text, source=tmp_path / "failboard.toml")
    board = Board(settings)
    board.spool.migrate()
    project = settings.project("shop")
    agent = Agent(board.spool, "shop", lambda: registry.make_executor(project), name="t:1")
    try:
        with TestClient(create_app(settings, board=board, inline=False)) as client:
            listed = client.get("/api/v1/jobs", params={"project": "shop"}).json()
            assert {j["id"] for j in listed["items"]} == {retried, forgotten}
            detail = client.get(f"/api/v1/jobs/shop/{retried}").json()
            assert detail["extra"]["tags"] == ["App\\Models\\Invoice:7"]
            for action, job in (("retry", retried), ("delete", forgotten)):
                created = client.post(
                    "/api/v1/actions", json={"project": "shop", "action": action, "job_ids": [job]}
                )
                assert created.status_code == 202, created.text
                assert agent.run_once() == 1
                done = client.get(f"/api/v1/actions/{created.json()['id']}").json()
                assert done["status"] == "completed" and done["result"]["succeeded"] == 1
            assert client.get("/api/v1/jobs", params={"project": "shop"}).json()["items"] == []
    finally:
        agent.close()
        board.close()
    # What Horizon's retry button and horizon:forget would have left:
    (pushed,) = app.queue("emails")
    assert pushed["retry_of"] == retried
    assert json.loads(app.hash(retried)["retried_by"])[0]["id"] == pushed["uuid"]
    assert app.zset("failed_jobs") == [retried] and app.hash(forgotten) == {}
    assert app.table() == set()

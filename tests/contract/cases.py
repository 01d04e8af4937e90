"""What each driver supplies to the contract suite: a way to make real failures in a real store,
its reader and executor over that store, and a way to see what was put back on a queue.

Add a driver by writing one ``DriverCase`` factory and listing it in ``CASES``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from failboard.config import ProjectSettings
from failboard.db import create_engine
from failboard.drivers import registry
from failboard.drivers.base import Executor, Reader
from failboard.drivers.celery import CeleryResender
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.failures import Failure, FailuresExecutor, Recorder
from tests.celery_support import celery_app, queued_messages
from tests.dramatiq_support import plant_dead_letter, pushed_message_ids
from tests.rq_jobs import fresh_prefix, plant
from tests.services import fresh_database


@dataclass(frozen=True, slots=True)
class Spec:
    """One failure to make: which queue, which job, what it raised, when (naive UTC)."""

    queue: str
    name: str
    exception_class: str
    message: str
    failed_at: datetime


@dataclass
class DriverCase:
    reader: Reader
    executor: Executor
    make_failures: Callable[[list[Spec]], list[str]]
    """Make real failures; returns their job ids, in the order of the specs."""
    requeued: Callable[[], list[str]]
    """Ids of the jobs the executor has put back on a queue, one entry per push."""


@contextmanager
def _case(
    project: ProjectSettings,
    executor: Executor,
    make_failures: Callable[[list[Spec]], list[str]],
    requeued: Callable[[], list[str]],
) -> Iterator[DriverCase]:
    """The project's reader beside ``executor``; both closed when the case ends."""
    reader = registry.make_reader(project, 5.0)
    try:
        yield DriverCase(reader, executor, make_failures, requeued)
    finally:
        reader.close()
        executor.close()


@contextmanager
def laravel_case(kind: str) -> Iterator[DriverCase]:
    with fresh_database(kind) as url:
        engine = create_engine(url)
        laravel_schema.create_tables(engine)
        project = ProjectSettings.model_validate(
            {"key": "contract", "driver": "laravel", "url": url}
        )

        def make_failures(specs: list[Spec]) -> list[str]:
            ids = [str(uuid.uuid4()) for _ in specs]
            rows = [
                {
                    "uuid": job_id,
                    "connection": "database",
                    "queue": spec.queue,
                    "payload": laravel_payload.build_payload(spec.name, uuid=job_id),
                    "exception": f"{spec.exception_class}: {spec.message} in /app/Job.php:7\n"
                    "Stack trace:\n#0 /app/vendor/laravel/Worker.php(12): handle()\n#1 {main}",
                    "failed_at": spec.failed_at,
                }
                for job_id, spec in zip(ids, specs, strict=True)
            ]
            with engine.begin() as connection:
                laravel_schema.insert_failed_jobs(connection, rows)
            return ids

        def requeued() -> list[str]:
            with engine.connect() as connection:
                payloads = connection.execute(sa.text("SELECT payload FROM jobs")).scalars()
                return [json.loads(p)["uuid"] for p in payloads]

        executor = registry.make_executor(project, batch_size=7)  # small: many batches
        try:
            with _case(project, executor, make_failures, requeued) as case:
                yield case
        finally:
            engine.dispose()


@contextmanager
def rq_case() -> Iterator[DriverCase]:
    with fresh_prefix() as (client, url, prefix):
        project = ProjectSettings.model_validate(
            {"key": "contract", "driver": "rq", "url": url, "prefix": prefix}
        )

        def make_failures(specs: list[Spec]) -> list[str]:
            ids = [str(uuid.uuid4()) for _ in specs]
            for job_id, spec in zip(ids, specs, strict=True):
                plant(
                    client,
                    prefix,
                    spec.queue,
                    spec.name,
                    spec.exception_class,
                    spec.message,
                    spec.failed_at.replace(tzinfo=UTC),
                    job_id,
                )
            return ids

        def requeued() -> list[str]:
            pushed: list[str] = []
            for key in sorted(client.smembers(f"{prefix}queues")):
                pushed += [m.decode() for m in client.lrange(key, 0, -1)]
            return pushed

        executor = registry.make_executor(project, batch_size=2)  # small: many batches
        with _case(project, executor, make_failures, requeued) as case:
            yield case


@contextmanager
def celery_case(kind: str) -> Iterator[DriverCase]:
    """Failures written by the real Recorder into the failures table on ``kind``; retries
    re-sent by a real Celery app to the real Redis broker (keys under a fresh prefix)."""
    with fresh_database(kind) as url, fresh_prefix() as (client, redis_url, prefix):
        app = celery_app(redis_url, prefix)
        recorder = Recorder(url, "contract")
        project = ProjectSettings.model_validate(
            {"key": "contract", "driver": "celery", "url": url}
        )

        def make_failures(specs: list[Spec]) -> list[str]:
            ids = [str(uuid.uuid4()) for _ in specs]
            for job_id, spec in zip(ids, specs, strict=True):
                trace = (
                    "Traceback (most recent call last):\n"
                    '  File "/app/tasks.py", line 7, in run\n    raise error\n'
                    f"{spec.exception_class}: {spec.message}\n"
                )
                failure = Failure(
                    engine="celery",
                    job_id=job_id,
                    name=spec.name,
                    queue=spec.queue,
                    args=[1, "two"],
                    kwargs={"three": 3},
                    exception_class=spec.exception_class,
                    exception_message=spec.message,
                    traceback=trace,
                    attempts=1,
                    failed_at=spec.failed_at,
                )
                assert recorder.record(failure)
            return ids

        def requeued() -> list[str]:
            return [
                message["headers"]["failboard_retry_of"]
                for queue in ("emails", "payments")
                for message in queued_messages(client, prefix, queue)
            ]

        executor = FailuresExecutor(
            "contract",
            url,
            resender=lambda: CeleryResender("contract", app),
            batch_size=2,  # small: many batches
        )
        try:
            with _case(project, executor, make_failures, requeued) as case:
                yield case
        finally:
            recorder.close()
            app.close()


@contextmanager
def dramatiq_redis_case() -> Iterator[DriverCase]:
    """Dead letters laid out as dramatiq's RedisBroker leaves them, their errors written by the
    real middleware's hooks, under a fresh namespace."""
    with fresh_prefix() as (client, url, prefix):
        ns = prefix.rstrip(":")
        project = ProjectSettings.model_validate(
            {"key": "contract", "driver": "dramatiq", "url": url, "namespace": ns}
        )
        originals: dict[str, str] = {}  # message_id -> the dead letter's id

        def make_failures(specs: list[Spec]) -> list[str]:
            ids = []
            for spec in specs:
                rid, message_id = plant_dead_letter(
                    client,
                    ns,
                    spec.queue,
                    spec.name,
                    spec.exception_class,
                    spec.message,
                    spec.failed_at.replace(tzinfo=UTC),
                )
                originals[message_id] = rid
                ids.append(rid)
            return ids

        def requeued() -> list[str]:
            return [
                originals.get(message_id, message_id)
                for queue in ("emails", "payments")
                for message_id in pushed_message_ids(client, ns, queue)
            ]

        executor = registry.make_executor(project, batch_size=2)  # small: many batches
        with _case(project, executor, make_failures, requeued) as case:
            yield case


@contextmanager
def dramatiq_table_case(kind: str) -> Iterator[DriverCase]:
    """The ``rabbitmq`` broker option's side: failures in the failures table, re-sent by the
    dramatiq resender (to a real RedisBroker here, so that what was re-sent can be read back;
    tests/integration/test_dramatiq_workers.py re-publishes to the real RabbitMQ)."""
    from dramatiq.brokers.redis import RedisBroker

    from failboard.drivers.dramatiq.resender import MESSAGE_OPTIONS, DramatiqResender

    with fresh_database(kind) as url, fresh_prefix() as (client, _, prefix):
        ns = prefix.rstrip(":")
        recorder = Recorder(url, "contract")
        project = ProjectSettings.model_validate(
            {"key": "contract", "driver": "dramatiq", "url": url, "broker": "rabbitmq"}
        )

        def make_failures(specs: list[Spec]) -> list[str]:
            ids = [str(uuid.uuid4()) for _ in specs]
            for job_id, spec in zip(ids, specs, strict=True):
                trace = (
                    "Traceback (most recent call last):\n"
                    '  File "/app/actors.py", line 7, in run\n    raise error\n'
                    f"{spec.exception_class}: {spec.message}\n"
                )
                failure = Failure(
                    engine="dramatiq",
                    job_id=job_id,
                    name=spec.name,
                    queue=spec.queue,
                    args=[1, "two"],
                    kwargs={"three": 3},
                    exception_class=spec.exception_class,
                    exception_message=spec.message,
                    traceback=trace,
                    attempts=1,
                    options={MESSAGE_OPTIONS: {"max_retries": 3}},
                    failed_at=spec.failed_at,
                )
                assert recorder.record(failure)
            return ids

        def requeued() -> list[str]:
            return [
                message_id
                for queue in ("emails", "payments")
                for message_id in pushed_message_ids(client, ns, queue)
            ]

        broker = RedisBroker(client=client, namespace=ns, middleware=[])
        executor = FailuresExecutor(
            "contract",
            url,
            resender=lambda: DramatiqResender("contract", None, broker=broker),
            batch_size=2,
        )
        try:
            with _case(project, executor, make_failures, requeued) as case:
                yield case
        finally:
            recorder.close()


@contextmanager
def huey_case(kind: str) -> Iterator[DriverCase]:
    """Failures written by the real Recorder into the failures table on ``kind``; retries
    re-sent by name by the real resender onto a real Huey storage (SQLite, in a folder of its
    own, so that nothing is shared), one queue per recorded instance name."""
    import tempfile

    from huey import SqliteHuey

    from failboard.drivers.huey import HueyResender

    with fresh_database(kind) as url, tempfile.TemporaryDirectory() as folder:
        huey = SqliteHuey("emails", filename=f"{folder}/huey.db")
        recorder = Recorder(url, "contract")
        project = ProjectSettings.model_validate({"key": "contract", "driver": "huey", "url": url})

        def make_failures(specs: list[Spec]) -> list[str]:
            ids = [str(uuid.uuid4()) for _ in specs]
            for job_id, spec in zip(ids, specs, strict=True):
                failure = Failure(
                    engine="huey",
                    job_id=job_id,
                    name=spec.name,  # re-sent by name: no consumer needs to know it here
                    queue=spec.queue,
                    args=[1, "two"],
                    kwargs={"three": 3},
                    exception_class=spec.exception_class,
                    exception_message=spec.message,
                    traceback=f"Traceback (most recent call last):\n{spec.exception_class}: "
                    f"{spec.message}\n",
                    attempts=1,
                    failed_at=spec.failed_at,
                )
                assert recorder.record(failure)
            return ids

        def requeued() -> list[str]:
            pushed = []
            for queue in ("emails", "payments"):
                storage = SqliteHuey(queue, filename=f"{folder}/huey.db").storage
                for data in storage.enqueued_items():
                    message = huey.serializer.deserialize(data)
                    assert (message.args, message.kwargs) == ((1, "two"), {"three": 3})
                    pushed.append(message.id)
            return pushed

        executor = FailuresExecutor(
            "contract",
            url,
            # keep_task_id: the message's id is the original one, which requeued() reports.
            resender=lambda: HueyResender("contract", huey, keep_task_id=True),
            batch_size=2,
        )
        try:
            with _case(project, executor, make_failures, requeued) as case:
                yield case
        finally:
            recorder.close()


def _redis_db(number: int) -> str:
    """The test Redis's database ``number``: arq and taskiq put a re-sent job on a key named
    after its queue, as is ("emails"), so each of the two gets a database of its own, where no
    other test's keys of another type live."""
    from tests.services import REDIS_URL

    base = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") > 2 else REDIS_URL
    return f"{base}/{number}"


def _recorded(engine: str, job_id: str, spec: Spec, **fields: Any) -> Failure:
    """A final failure as the engine's recorder makes it from what a worker saw."""
    return Failure(
        engine=engine,
        job_id=job_id,
        name=spec.name,
        queue=spec.queue,
        exception_class=spec.exception_class,
        exception_message=spec.message,
        traceback="Traceback (most recent call last):\n"
        '  File "/app/tasks.py", line 7, in run\n    raise error\n'
        f"{spec.exception_class}: {spec.message}\n",
        failed_at=spec.failed_at,
        **fields,
    )


@contextmanager
def arq_case() -> Iterator[DriverCase]:
    """Failures written by the real Recorder (what the arq integration's wrapper calls) into the
    failures table on SQLite; retries enqueued by the real resender on a real ArqRedis pool, to
    the arq queues (sorted sets named after the queue) of Redis database 11. The jobs carry
    their original id in a ``ref`` keyword, which ``requeued()`` reads back from the job arq
    stored: only this case's jobs are reported, and only they are removed afterwards."""
    from arq.connections import RedisSettings
    from arq.constants import job_key_prefix
    from arq.jobs import JobDef, deserialize_job

    from failboard.drivers.arq import ArqResender

    url = _redis_db(11)
    with fresh_database("sqlite") as db, fresh_prefix(url) as (client, _, _):
        recorder = Recorder(db, "contract")
        project = ProjectSettings.model_validate({"key": "contract", "driver": "arq", "url": db})
        settings = {"redis_settings": RedisSettings.from_dsn(url), "job_serializer": None}
        mine: set[str] = set()

        def make_failures(specs: list[Spec]) -> list[str]:
            ids = [str(uuid.uuid4()) for _ in specs]
            mine.update(ids)
            for job_id, spec in zip(ids, specs, strict=True):
                kwargs = {"three": 3, "ref": job_id}
                failure = _recorded("arq", job_id, spec, args=[1, "two"], kwargs=kwargs, attempts=1)
                assert recorder.record(failure)
            return ids

        def ours() -> Iterator[tuple[str, str, JobDef]]:
            for queue in ("emails", "payments"):
                for member in client.zrange(queue, 0, -1):
                    data = client.get(job_key_prefix + member.decode())
                    job = deserialize_job(data) if data is not None else None
                    if job is not None and job.kwargs.get("ref") in mine:  # else another run's
                        yield queue, member.decode(), job

        def requeued() -> list[str]:
            found = []
            for _, job_id, job in ours():
                assert job_id != job.kwargs["ref"]  # a new job id (the default)
                assert (job.args, job.kwargs["three"]) == ((1, "two"), 3)
                found.append(job.kwargs["ref"])
            return found

        executor = FailuresExecutor(
            "contract",
            db,
            resender=lambda: ArqResender("contract", settings),
            batch_size=2,  # small: many batches
        )
        try:
            with _case(project, executor, make_failures, requeued) as case:
                yield case
        finally:
            recorder.close()
            for queue, job_id, _ in list(ours()):
                client.zrem(queue, job_id)
                client.delete(job_key_prefix + job_id)


@contextmanager
def taskiq_case() -> Iterator[DriverCase]:
    """Failures written by the real Recorder (what ``FailboardMiddleware`` calls) into the
    failures table on SQLite, with the task's labels; retries kicked by the real resender
    through a real taskiq-redis ``ListQueueBroker`` to the queue lists ("emails") of Redis
    database 12. ``requeued()`` reads the messages back: the ``failboard_retry_of`` label names
    the failure each is a retry of (only this case's are reported, and removed afterwards)."""
    from taskiq import TaskiqMessage
    from taskiq_redis import ListQueueBroker

    from failboard.drivers.taskiq.resender import TaskiqResender
    from failboard.integrations.taskiq import LABELS, RETRY_OF_LABEL

    url = _redis_db(12)
    with fresh_database("sqlite") as db, fresh_prefix(url) as (client, _, prefix):
        recorder = Recorder(db, "contract")
        project = ProjectSettings.model_validate({"key": "contract", "driver": "taskiq", "url": db})
        broker = ListQueueBroker(url, queue_name=f"{prefix}default")
        labels = {"retry_on_error": True, "max_retries": 3}
        mine: set[str] = set()

        def make_failures(specs: list[Spec]) -> list[str]:
            ids = [str(uuid.uuid4()) for _ in specs]
            mine.update(ids)
            for job_id, spec in zip(ids, specs, strict=True):
                failure = _recorded(
                    "taskiq",
                    job_id,
                    spec,
                    args=[1, "two"],
                    kwargs={"three": 3},
                    attempts=3,
                    options={LABELS: labels},
                )
                assert recorder.record(failure)
            return ids

        def ours() -> Iterator[tuple[str, bytes, TaskiqMessage]]:
            for queue in ("emails", "payments"):
                for raw in client.lrange(queue, 0, -1):
                    message = broker.formatter.loads(raw)
                    if message.labels.get(RETRY_OF_LABEL) in mine:  # else another run's
                        yield queue, raw, message

        def requeued() -> list[str]:
            found = []
            for queue, _, message in ours():
                message.parse_labels()  # as the worker's receiver does
                retry_of = message.labels[RETRY_OF_LABEL]
                assert message.task_id != retry_of  # a new task id (the default)
                assert (message.args, message.kwargs) == ([1, "two"], {"three": 3})
                assert message.labels["queue_name"] == queue  # back to its queue
                assert message.labels["max_retries"] == 3  # the task's own labels kept
                found.append(retry_of)
            return found

        executor = FailuresExecutor(
            "contract",
            db,
            resender=lambda: TaskiqResender("contract", broker),
            batch_size=2,  # small: many batches
        )
        try:
            with _case(project, executor, make_failures, requeued) as case:
                yield case
        finally:
            recorder.close()
            for queue, raw, _ in list(ours()):
                client.lrem(queue, 1, raw)


CASES: dict[str, Callable[[], AbstractContextManager[DriverCase]]] = {
    "rq": rq_case,
    "laravel-sqlite": lambda: laravel_case("sqlite"),
    "laravel-postgres": lambda: laravel_case("postgres"),
    "laravel-mysql": lambda: laravel_case("mysql"),
    "celery-sqlite": lambda: celery_case("sqlite"),
    "celery-postgres": lambda: celery_case("postgres"),
    "celery-mysql": lambda: celery_case("mysql"),
    "dramatiq-redis": dramatiq_redis_case,
    "dramatiq-table-sqlite": lambda: dramatiq_table_case("sqlite"),
    "dramatiq-table-postgres": lambda: dramatiq_table_case("postgres"),
    "huey-sqlite": lambda: huey_case("sqlite"),
    "huey-postgres": lambda: huey_case("postgres"),
    "arq-sqlite": arq_case,
    "taskiq-sqlite": taskiq_case,
}

UNGROUPED = frozenset({"dramatiq-redis"})
"""Cases whose executor has no grouped face (the agent runs their actions one by one)."""

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

        reader = registry.make_reader(project, 5.0)
        executor = registry.make_executor(project, batch_size=7)  # small: many batches
        try:
            yield DriverCase(reader, executor, make_failures, requeued)
        finally:
            reader.close()
            executor.close()
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

        reader = registry.make_reader(project, 5.0)
        executor = registry.make_executor(project, batch_size=2)  # small: many batches
        try:
            yield DriverCase(reader, executor, make_failures, requeued)
        finally:
            reader.close()
            executor.close()


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

        reader = registry.make_reader(project, 5.0)
        executor = FailuresExecutor(
            "contract",
            url,
            resender=lambda: CeleryResender("contract", app),
            batch_size=2,  # small: many batches
        )
        try:
            yield DriverCase(reader, executor, make_failures, requeued)
        finally:
            reader.close()
            executor.close()
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

        reader = registry.make_reader(project, 5.0)
        executor = registry.make_executor(project, batch_size=2)  # small: many batches
        try:
            yield DriverCase(reader, executor, make_failures, requeued)
        finally:
            reader.close()
            executor.close()


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
        reader = registry.make_reader(project, 5.0)
        executor = FailuresExecutor(
            "contract",
            url,
            resender=lambda: DramatiqResender("contract", None, broker=broker),
            batch_size=2,
        )
        try:
            yield DriverCase(reader, executor, make_failures, requeued)
        finally:
            reader.close()
            executor.close()
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

        reader = registry.make_reader(project, 5.0)
        executor = FailuresExecutor(
            "contract",
            url,
            # keep_task_id: the message's id is the original one, which requeued() reports.
            resender=lambda: HueyResender("contract", huey, keep_task_id=True),
            batch_size=2,
        )
        try:
            yield DriverCase(reader, executor, make_failures, requeued)
        finally:
            reader.close()
            executor.close()
            recorder.close()


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
}

UNGROUPED = frozenset({"dramatiq-redis"})
"""Cases whose executor has no grouped face (the agent runs their actions one by one)."""

"""Dramatiq worlds for the tests: a namespace (Redis) or queue names (RabbitMQ) no one else uses,
real ``dramatiq`` worker subprocesses running tests/dramatiq_actors.py, and cleanup of only what
the test made (never FLUSHDB or a broker-wide purge on a shared server)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from failboard.config import ProjectSettings
from tests.services import RABBITMQ_URL, REDIS_URL, unavailable

ROOT = Path(__file__).resolve().parents[1]
DRAMATIQ = [sys.executable, "-m", "dramatiq"]


@dataclass
class World:
    broker: str  # "redis" | "rabbitmq"
    url: str
    ns: str
    queue: str
    markers: Path
    db: str | None = None
    middleware: bool = True
    client: Any = None
    logs: list[Path] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            FAILBOARD_DRAMATIQ_BROKER=self.broker,
            FAILBOARD_DRAMATIQ_URL=self.url,
            FAILBOARD_DRAMATIQ_NS=self.ns,
            FAILBOARD_DRAMATIQ_QUEUE=self.queue,
            FAILBOARD_DRAMATIQ_MARKERS=str(self.markers),
            FAILBOARD_DRAMATIQ_MIDDLEWARE="1" if self.middleware else "0",
            PYTHONPATH=str(ROOT),
        )
        if self.db:
            env["FAILBOARD_DRAMATIQ_DB"] = self.db
        return env

    def project(self) -> ProjectSettings:
        if self.broker == "rabbitmq":
            assert self.db is not None
            keys: dict[str, Any] = {"url": self.db, "broker": "rabbitmq", "broker_url": self.url}
        else:
            keys = {"url": self.url, "namespace": self.ns}
            if not self.middleware:
                keys["queues"] = [self.queue]  # no middleware, no queue set to find them in
        return ProjectSettings.model_validate({"key": "etl", "driver": "dramatiq", **keys})

    def send(self, actor: str, *args: Any) -> str:
        """Enqueue a message for ``actor`` from here (no actors imported); its message_id."""
        import dramatiq

        if self.broker == "rabbitmq":
            from dramatiq.brokers.rabbitmq import RabbitmqBroker

            broker: dramatiq.Broker = RabbitmqBroker(url=self.url, middleware=[])
        else:
            from dramatiq.brokers.redis import RedisBroker

            broker = RedisBroker(url=self.url, namespace=self.ns, middleware=[])
        try:
            message: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=self.queue, actor_name=actor, args=args, kwargs={}, options={}
            )
            return broker.enqueue(message).message_id
        finally:
            broker.close()

    @contextmanager
    def worker(self) -> Iterator[subprocess.Popen[bytes]]:
        log = self.markers / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*DRAMATIQ, "tests.dramatiq_actors", "--processes", "1", "--threads", "1"],
                cwd=ROOT,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                yield process
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs if p.exists())

    def runs(self, name: str) -> int:
        path = self.markers / f"runs-{name}"
        return int(path.read_text()) if path.exists() else 0


def wait(what: str, probe: Callable[[], Any], timeout: float = 60.0, log: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log}")
        time.sleep(0.1)


@contextmanager
def redis_world(markers: Path, *, middleware: bool = True) -> Iterator[World]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        client.close()
        unavailable("redis", exc)
    ns = f"fbtest{secrets.token_hex(6)}"
    try:
        yield World("redis", REDIS_URL, ns, "payments", markers, None, middleware, client)
    finally:
        keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()


def pika_url(url: str) -> str:
    """kombu's ``amqp://…//`` names the vhost "/"; pika (dramatiq) spells it ``%2F``."""
    return url[:-1] + "%2F" if url.endswith("//") else url


@contextmanager
def rabbitmq_world(markers: Path, db: str) -> Iterator[World]:
    import pika

    from failboard.db import create_engine
    from failboard.failures import create_failures_table

    engine = create_engine(db)
    create_failures_table(engine)  # what `failboard migrate --failures` does
    engine.dispose()
    url = pika_url(RABBITMQ_URL)
    queue = f"fbtest{secrets.token_hex(6)}"
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except pika.exceptions.AMQPError as exc:
        unavailable("rabbitmq", exc)
    try:
        yield World("rabbitmq", url, "", queue, markers, db)
    finally:
        channel = connection.channel()
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
        connection.close()


def plant_dead_letter(
    client: Any,
    ns: str,
    queue: str,
    actor: str,
    exception_class: str,
    message: str,
    failed_at: datetime,
) -> tuple[str, str]:
    """One dead letter as RedisBroker's nack leaves it, dead-lettered at ``failed_at`` (a worker
    cannot fail a message 50 hours ago), with its error written by the middleware's own hooks.
    Returns ``(redis message id, message id)``."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    from failboard.integrations.dramatiq import FailboardMiddleware

    rid, message_id = str(uuid.uuid4()), str(uuid.uuid4())
    data: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue,
        actor_name=actor,
        args=(1, "two"),
        kwargs={"three": 3},
        options={"redis_message_id": rid, "max_retries": 0},
        message_id=message_id,
    )
    pipe = client.pipeline()
    pipe.zadd(f"{ns}:{queue}.XQ", {rid: int(failed_at.timestamp() * 1000)})
    pipe.hset(f"{ns}:{queue}.XQ.msgs", rid, data.encode())
    pipe.execute()
    broker = RedisBroker(client=client, namespace=ns, middleware=[])
    middleware = FailboardMiddleware()
    broker.add_middleware(middleware)
    proxy = dramatiq.MessageProxy(data)
    kind = type(exception_class, (Exception,), {"__module__": "builtins"})
    try:
        raise kind(message)
    except Exception as exc:
        middleware.after_process_message(broker, proxy, exception=exc)
    proxy.fail()
    middleware.after_nack(broker, proxy)
    return rid, message_id


def pushed_message_ids(client: Any, ns: str, queue: str) -> list[str]:
    """The message ids waiting on a RedisBroker queue, one per push."""
    rids = client.lrange(f"{ns}:{queue}", 0, -1)
    raws = client.hmget(f"{ns}:{queue}.msgs", rids) if rids else []
    return [json.loads(raw)["message_id"] for raw in raws if raw is not None]

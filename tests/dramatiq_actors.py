"""Actors for real Dramatiq workers in the tests, configured from the environment at import:

    dramatiq tests.dramatiq_actors --processes 1 --threads 1 --queues QUEUE QUEUE.DQ

- ``FAILBOARD_DRAMATIQ_BROKER``: ``redis`` (default) or ``rabbitmq``; ``FAILBOARD_DRAMATIQ_URL``
  its URL; ``FAILBOARD_DRAMATIQ_NS`` the Redis namespace (one per test).
- ``FAILBOARD_DRAMATIQ_QUEUE``: the actors' queue (unique per test on RabbitMQ).
- ``FAILBOARD_DRAMATIQ_DB``: the failures table's database, when the middleware records there.
- ``FAILBOARD_DRAMATIQ_MIDDLEWARE=0``: run without failboard's middleware.
- ``FAILBOARD_DRAMATIQ_MARKERS``: a folder where actors count their runs and read fixes.
"""

from __future__ import annotations

import os
from pathlib import Path

import dramatiq

BROKER = os.environ.get("FAILBOARD_DRAMATIQ_BROKER", "redis")
URL = os.environ.get("FAILBOARD_DRAMATIQ_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("FAILBOARD_DRAMATIQ_QUEUE", "payments")


def _broker() -> dramatiq.Broker:
    if BROKER == "rabbitmq":
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=URL)
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=URL, namespace=os.environ.get("FAILBOARD_DRAMATIQ_NS", "dramatiq"))


broker = _broker()
if os.environ.get("FAILBOARD_DRAMATIQ_MIDDLEWARE", "1") != "0":
    from failboard.integrations.dramatiq import FailboardMiddleware

    db = os.environ.get("FAILBOARD_DRAMATIQ_DB")
    broker.add_middleware(FailboardMiddleware(url=db, project="etl" if db else None))
dramatiq.set_broker(broker)


class PaymentDeclined(Exception):
    pass


def _count(name: str) -> int:
    folder = Path(os.environ["FAILBOARD_DRAMATIQ_MARKERS"])
    runs = folder / f"runs-{name}"
    count = int(runs.read_text()) + 1 if runs.exists() else 1
    runs.write_text(str(count))
    return count


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def charge(card: str, amount: int) -> None:
    """Fails until a marker file says the card was fixed, then succeeds (and says so)."""
    _count(card)
    folder = Path(os.environ["FAILBOARD_DRAMATIQ_MARKERS"])
    if not (folder / f"fixed-{card}").exists():
        raise PaymentDeclined(f"card {card} declined for {amount} cents")
    (folder / f"ok-{card}").write_text("charged")


@dramatiq.actor(queue_name=QUEUE, max_retries=1, min_backoff=50, max_backoff=100)
def flaky(name: str) -> None:
    """Fails on each of its two attempts, saying which one: the final error is attempt 2."""
    attempt = _count(name)
    raise RuntimeError(f"{name} broke on attempt {attempt}")

"""Tasks for a real taskiq worker in the tests (taskiq-redis ListQueueBroker), with failboard's
middleware and taskiq's retry middleware.

The worker subprocess imports this module (``taskiq worker tests.taskiq_tasks:broker``), and so
do the agent (``app = "tests.taskiq_tasks:broker"``) and the test's kicking subprocess. What
differs between tests comes from the environment, read at import: ``FB_TASKIQ_QUEUE`` (the
queue's list key, unique per test), ``FB_REDIS_URL``, ``FB_FAILURES`` and ``FB_MARKERS``.
"""

from __future__ import annotations

import os
from typing import Annotated

from taskiq import Context, SimpleRetryMiddleware, TaskiqDepends
from taskiq_redis import ListQueueBroker

from failboard.integrations.taskiq import RETRY_OF_LABEL, FailboardMiddleware
from tests.recorder_workers import fixed, note_done

PROJECT = "shop"

broker = ListQueueBroker(
    os.environ.get("FB_REDIS_URL", "redis://127.0.0.1:6379/0"),
    queue_name=os.environ.get("FB_TASKIQ_QUEUE", "taskiq"),
).with_middlewares(SimpleRetryMiddleware(default_retry_count=2))
if os.environ.get("FB_FAILURES"):
    broker.add_middlewares(FailboardMiddleware(url=os.environ["FB_FAILURES"], project=PROJECT))


class CarrierDown(Exception):
    """The shipping carrier's API did not answer."""


@broker.task(retry_on_error=True, max_retries=2)
async def ship_order(
    order_id: int,
    carrier: str,
    note: str = "",
    context: Annotated[Context, TaskiqDepends()] = None,  # type: ignore[assignment]
) -> str:
    """Fails until the "fixed" marker exists: retried once by SimpleRetryMiddleware, then fails."""
    if not fixed():
        raise CarrierDown(f"order {order_id}: {carrier} did not answer")
    labels = context.message.labels
    note_done(
        "ship_order",
        context.message.task_id,
        args=[order_id, carrier],
        note=note,
        retry_of=labels.get(RETRY_OF_LABEL),
    )
    return f"shipped {order_id}"


@broker.task
async def login(user: str, password: str) -> None:
    """Always fails (no retry); its password must never reach the failures table."""
    raise PermissionError(f"no such user {user}")

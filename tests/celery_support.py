"""Celery for the tests: apps on the real brokers, isolated by key prefix or queue names."""

from __future__ import annotations

import json
from typing import Any


def celery_app(broker_url: str, prefix: str = "", **conf: Any) -> Any:
    """A Celery app on ``broker_url``; on Redis every key it makes starts with ``prefix``."""
    from celery import Celery

    app = Celery("failboard-tests", broker=broker_url, set_as_current=False)
    options: dict[str, Any] = {}
    if prefix:
        options["global_keyprefix"] = prefix
    app.conf.update(
        broker_transport_options=options,
        broker_connection_retry_on_startup=False,
        task_default_queue="failboard-tests-default",
        **conf,
    )
    return app


def queued_messages(client: Any, prefix: str, queue: str) -> list[dict[str, Any]]:
    """The messages waiting on a Redis-broker queue (kombu keeps each queue as a list)."""
    return [json.loads(raw) for raw in client.lrange(f"{prefix}{queue}", 0, -1)]

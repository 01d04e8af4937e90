"""Dramatiq's Redis key names, and failboard's own beside them: shared by the driver (which
reads them) and the middleware (which writes them), so that importing them costs no Redis client.

dramatiq 1.x and 2.x lay a queue out the same way (brokers/redis/dispatch.lua):
``<ns>:<queue>`` (list of redis message ids), ``<ns>:<queue>.msgs`` (hash id -> message),
``<ns>:<queue>.XQ`` (dead letters: sorted set, score = dead-letter time in ms) and
``<ns>:<queue>.XQ.msgs`` (hash id -> message).
"""

from __future__ import annotations

__all__ = [
    "ERROR_SLACK",
    "TRANSIENT_OPTIONS",
    "canonical",
    "error_key",
    "queue_key",
    "queue_messages_key",
    "queues_key",
    "xq_key",
    "xq_messages_key",
]

TRANSIENT_OPTIONS = frozenset(
    {"redis_message_id", "retries", "traceback", "requeue_timestamp", "eta"}
)
"""Options dramatiq sets per delivery or per attempt: a retried message starts without them."""

ERROR_SLACK = 86_400
"""Seconds an error record outlives the dead-letter TTL, so that it never expires first."""


def canonical(queue: str) -> str:
    """The queue a delay (``.DQ``) or dead-letter (``.XQ``) queue belongs to (dramatiq's q_name)."""
    return queue[:-3] if queue.endswith((".DQ", ".XQ")) else queue


def queue_key(ns: str, queue: str) -> str:
    return f"{ns}:{queue}"


def queue_messages_key(ns: str, queue: str) -> str:
    return f"{ns}:{queue}.msgs"


def xq_key(ns: str, queue: str) -> str:
    return f"{ns}:{queue}.XQ"


def xq_messages_key(ns: str, queue: str) -> str:
    return f"{ns}:{queue}.XQ.msgs"


def error_key(ns: str, redis_message_id: str) -> str:
    """Where the middleware keeps the final error of the dead letter ``redis_message_id``."""
    return f"{ns}:failboard:error:{redis_message_id}"


def queues_key(ns: str) -> str:
    """The set of queue names the middleware has dead-lettered messages of: dramatiq keeps no
    list of queues in Redis, and the reader must not SCAN the keyspace to find them."""
    return f"{ns}:failboard:queues"

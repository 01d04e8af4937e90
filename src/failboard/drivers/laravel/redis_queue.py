"""Laravel's Redis queue, as far as a retry needs it: where a queue's keys are and how a raw
payload is pushed (``Illuminate\\Queue\\RedisQueue::pushRaw``).

``pushRaw`` runs ``LuaScripts::push`` with ``KEYS = [queues:<q>, queues:<q>:notify]``: RPUSH the
payload onto the queue list, then RPUSH ``1`` onto its notify list (workers blocking with
``block_for`` wait on that list). The connection's prefix (``database.redis.options.prefix``,
``laravel_database_`` by default) is put before every key by phpredis/predis, KEYS of a script
included. On a cluster connection a queue without a hash tag becomes ``queues:{q}`` so that the
list and its notify list hash to the same slot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from failboard.exceptions import StoreError, StoreUnreachable

if TYPE_CHECKING:
    import redis

__all__ = ["PUSH_SCRIPT", "RedisQueue", "connect", "has_hash_tag", "redis_errors"]

# Illuminate\Queue\LuaScripts::push(), byte for byte: the same script as Laravel means the same
# SHA in SCRIPT LIST / MONITOR, and the same two writes.
PUSH_SCRIPT = """-- Push the job onto the queue...
redis.call('rpush', KEYS[1], ARGV[1])
-- Push a notification onto the "notify" queue...
redis.call('rpush', KEYS[2], 1)"""

_HASH_TAG = re.compile(r".*\{[^}]+\}.*", re.DOTALL)


def has_hash_tag(key: str) -> bool:
    """``Illuminate\\Redis\\Connections\\Connection::hasHashTag``."""
    return _HASH_TAG.fullmatch(key) is not None


def connect(url: str, what: str, timeout: float = 30.0) -> redis.Redis:
    """A client for ``url`` whose every command gives up after ``timeout`` seconds (the agent's
    long batches get the default; the dashboard's readers pass the store timeout, so a slow
    Redis frees their thread when the page stops waiting). The ``redis`` package is needed only
    by projects that use Redis."""
    try:
        import redis as redis_module
    except ImportError:  # pragma: no cover - depends on the installation
        raise StoreError(
            f"{what}: a Redis queue needs the redis package (pip install 'redis>=5')"
        ) from None
    return redis_module.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=min(timeout, 10.0)
    )


def redis_errors(what: str, exc: BaseException) -> StoreError:
    """A Redis error as failboard's own, naming the project (never the URL: it may hold a
    password)."""
    import redis as redis_module

    from failboard.drivers.redisstore import first_line

    # The same words as the other Redis drivers' (redisstore.RedisStore.errors), so an operator
    # reading the banners of an RQ and a Horizon project on one Redis sees one cause.
    if isinstance(exc, redis_module.ConnectionError | redis_module.TimeoutError):
        return StoreUnreachable(f"{what}: cannot reach Redis: {first_line(exc)}")
    return StoreError(f"{what}: Redis said: {first_line(exc)}")


class RedisQueue:
    """One Laravel Redis queue connection: its key layout and its push."""

    def __init__(self, client: redis.Redis, prefix: str, *, cluster: bool = False) -> None:
        self.client = client
        self.prefix = prefix
        self.cluster = cluster

    def key(self, queue: str | None) -> str:
        """``RedisQueue::getQueueRedisKey`` with the connection prefix: the queue's list."""
        name = queue or "default"
        if self.cluster and not has_hash_tag(name):
            name = "{" + name + "}"
        return f"{self.prefix}queues:{name}"

    def queue_push(self, pipe: Any, queue: str | None, payload: str) -> None:
        """Add one ``pushRaw`` to a pipeline (or a MULTI block)."""
        key = self.key(queue)
        pipe.eval(PUSH_SCRIPT, 2, key, f"{key}:notify", payload)

    def push(self, jobs: Sequence[tuple[str | None, str]]) -> None:
        """``pushRaw`` each ``(queue, payload)`` in order, in one round trip.

        MULTI/EXEC: all of them or none, so a failure leaves nothing half-pushed to undo. On a
        cluster the jobs of different queues live on different nodes; a cluster client sends
        them per node, each node's part still all-or-nothing.
        """
        if not jobs:
            return
        pipe = self.client.pipeline(transaction=not self.cluster)
        for queue, payload in jobs:
            self.queue_push(pipe, queue, payload)
        pipe.execute()

    def close(self) -> None:
        self.client.close()

"""The Redis clients of one Laravel executor, opened on first use: the queue connection's
(``redis_url``) and Horizon's store (``horizon_url``, else the same database).

When both live on one database they share one client, so that a batch's pushes and Horizon's
records can go in one MULTI/EXEC (see :meth:`.HorizonStore.retry`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from failboard.drivers.laravel.horizon import HorizonStore
from failboard.drivers.laravel.options import Options
from failboard.drivers.laravel.outcome import is_redis_error
from failboard.drivers.laravel.payload import PayloadError
from failboard.drivers.laravel.redis_queue import RedisQueue, connect, redis_errors
from failboard.exceptions import StoreError

__all__ = ["RedisClients"]


class RedisClients:
    """Lazily opened :class:`RedisQueue` and :class:`HorizonStore` of one project."""

    def __init__(
        self, options: Options, what: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.options = options
        self.what = what
        self._clock = clock
        self._queue: RedisQueue | None = None
        self._horizon: HorizonStore | None = None

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Redis errors (and payloads Horizon cannot re-encode) as failboard's own, naming the
        project."""
        try:
            yield
        except PayloadError as exc:
            raise StoreError(f"{self.what}: {exc}") from exc
        except Exception as exc:
            if is_redis_error(exc):
                raise redis_errors(self.what, exc) from exc
            raise

    def queue(self) -> RedisQueue:
        """The Redis queue connection (callers check ``redis_url`` first)."""
        if self._queue is None:
            url = self.options.redis_url
            assert url is not None  # the planner fails jobs of Redis connections without one
            self._queue = RedisQueue(
                connect(url, self.what),
                self.options.redis_prefix,
                cluster=self.options.redis_cluster,
            )
        return self._queue

    def horizon(self) -> HorizonStore:
        """Horizon's records (callers refuse ``horizon = true`` without a Redis URL first)."""
        if self._horizon is None:
            options = self.options
            url = options.horizon_redis_url
            assert url is not None
            if url == options.redis_url:
                client = self.queue().client  # one client: one MULTI for pushes and records
            else:
                client = connect(url, self.what)
            self._horizon = HorizonStore(
                client,
                options.horizon_prefix,
                pending_minutes=options.horizon_pending_minutes,
                clock=self._clock,
            )
        return self._horizon

    def close(self) -> None:
        if self._horizon is not None and (
            self._queue is None or self._horizon.client is not self._queue.client
        ):
            self._horizon.client.close()
        if self._queue is not None:
            self._queue.close()

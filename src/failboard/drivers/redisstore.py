"""What the Redis-native drivers (RQ, Dramatiq) share: one project's Redis connection, redis-py
errors translated at the driver's edge, and total decoding of bytes any process could have
written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis import exceptions as redis_errors

from failboard.exceptions import FailboardError, StoreError, StoreUnreachable

__all__ = ["RedisStore", "first_line", "redact_url", "text"]


class RedisStore:
    """The Redis connection of one project, with its errors named after the project."""

    def __init__(
        self,
        project: str,
        url: str,
        *,
        timeout: float | None,
        client: redis.Redis | None = None,
    ) -> None:
        self.project = project
        self.what = f"project {project}"
        self.url = url
        if client is None:
            try:
                client = redis.Redis.from_url(
                    url, socket_timeout=timeout, socket_connect_timeout=timeout
                )
            except ValueError as exc:
                raise StoreError(f"{self.what}: {exc}") from exc
        self.redis: redis.Redis = client

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Translate redis-py errors into StoreUnreachable / StoreError naming the project."""
        try:
            yield
        except FailboardError:
            raise
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise StoreUnreachable(
                f"{self.what} ({redact_url(self.url)}): cannot reach Redis: {first_line(exc)}"
            ) from exc
        except redis_errors.RedisError as exc:
            raise StoreError(f"{self.what}: Redis said: {first_line(exc)}") from exc

    def close(self) -> None:
        self.redis.close()


def text(value: bytes | str | None, limit: int | None = None) -> str:
    """Bytes from Redis as text (undecodable bytes replaced), cut at ``limit`` characters."""
    if value is None:
        return ""
    out = value if isinstance(value, str) else value.decode("utf-8", "replace")
    return out if limit is None else out[:limit]


def first_line(exc: BaseException) -> str:
    line = str(exc).strip().splitlines()
    return line[0] if line else type(exc).__name__


def redact_url(url: str) -> str:
    """The URL without its password: redis://user:secret@host/0 -> redis://user:***@host/0."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, host = rest.rpartition("@")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in auth else f"{scheme}://{user}@{host}"

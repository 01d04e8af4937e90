"""One project's RQ keys in Redis, as the reader and the executor both see them.

Key names follow rq 2.x and 3.x (``<prefix>failed:<queue>``, ``<prefix>job:<id>``,
``<prefix>results:<id>``, ``<prefix>queue:<queue>``, ``<prefix>queues``). Times cross this
boundary as aware UTC datetimes. Everything here reads bytes that any process could have written:
decoding is total and bounded, and nothing is ever unpickled.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from datetime import UTC, datetime

import redis

from failboard.drivers.redisstore import RedisStore, text
from failboard.drivers.rq.options import Options

__all__ = [
    "MAX_TEXT",
    "RqStore",
    "decode_exc_info",
    "decode_exc_string",
    "inflate",
    "parse_time",
    "text",
]

MAX_TEXT = 1_000_000
"""Characters of an exception text we inflate at most: a bomb costs no more than this."""


class RqStore(RedisStore):
    """The Redis connection and the key names of one project."""

    def __init__(
        self,
        project: str,
        url: str,
        options: Options,
        *,
        timeout: float | None,
        client: redis.Redis | None = None,
    ) -> None:
        super().__init__(project, url, timeout=timeout, client=client)
        self.options = options
        prefix = options.prefix
        self.queues_key = f"{prefix}queues"
        self._queue_prefix = f"{prefix}queue:"

    # -- keys ------------------------------------------------------------------------------

    def failed(self, queue: str) -> str:
        return f"{self.options.prefix}failed:{queue}"

    def zset(self, queue: str) -> str:
        """The sorted set :mod:`failboard.drivers.redispages` walks: the failed registry."""
        return self.failed(queue)

    def job(self, job_id: str) -> str:
        return f"{self.options.prefix}job:{job_id}"

    def results(self, job_id: str) -> str:
        return f"{self.options.prefix}results:{job_id}"

    def queue(self, queue: str) -> str:
        return f"{self._queue_prefix}{queue}"

    # -- scores ----------------------------------------------------------------------------

    def score_of(self, queue: str, at: datetime) -> float:
        """The registry score of a failure at ``at`` in ``queue`` (rq: failure time + ttl)."""
        return at.timestamp() + self.options.ttl(queue)

    def time_of(self, queue: str, score: float) -> datetime | None:
        """When the failure with this score happened; None for jobs kept forever (+inf)."""
        if score == float("inf"):
            return None
        return datetime.fromtimestamp(score - self.options.ttl(queue), UTC)

    def floor(self, now: float) -> float | None:
        """rq's cleanup drops scores <= now: those failures have expired."""
        return now

    # -- queues ----------------------------------------------------------------------------

    def queue_names(self) -> list[str]:
        """The configured queues, else every queue rq registered in ``<prefix>queues``."""
        if self.options.queues:
            return list(self.options.queues)
        names = []
        for member in self.redis.smembers(self.queues_key):
            key = text(member)
            if key.startswith(self._queue_prefix):
                names.append(key[len(self._queue_prefix) :])
        return sorted(names)


def inflate(data: bytes, limit: int = MAX_TEXT) -> tuple[bytes, bool]:
    """zlib-decompress at most ``limit`` bytes; ``(data, True)`` when it was not zlib at all."""
    try:
        inflater = zlib.decompressobj()
        return inflater.decompress(data, limit), False
    except zlib.error:
        return data, True


def decode_exc_string(raw: bytes | str | None, limit: int = MAX_TEXT) -> str | None:
    """A results-stream ``exc_string``: base64 of zlib of the text (rq 2.x and 3.x). Anything
    else is shown as it is, never raised on."""
    if not raw:
        return None
    data = raw.encode() if isinstance(raw, str) else raw
    try:
        packed = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return text(data, limit)
    inflated, raw_data = inflate(packed, limit)
    return text(data if raw_data else inflated, limit)


def decode_exc_info(raw: bytes | None, limit: int = MAX_TEXT) -> str | None:
    """The hash's ``exc_info`` (rq < 2 kept the traceback there, zlib-compressed)."""
    if not raw:
        return None
    inflated, _ = inflate(raw, limit)
    return text(inflated, limit) or None


def parse_time(value: bytes | str | None) -> datetime | None:
    """rq's ``%Y-%m-%dT%H:%M:%S.%fZ`` (or without fraction) as aware UTC; None if unreadable."""
    raw = text(value, 64).strip()
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

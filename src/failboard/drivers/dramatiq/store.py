"""One Dramatiq project's keys in Redis (see :mod:`failboard.drivers.dramatiq.keys`), as the
reader and the executor both see them, and the total, bounded decoding of what workers wrote.

Messages are JSON (dramatiq's default encoder). A project that set another encoder (pickle)
writes bytes that are never unpickled here: :func:`decode_message` reads their plain values
without running them, for display only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from failboard.drivers.dramatiq import keys
from failboard.drivers.dramatiq.options import Options
from failboard.drivers.redisstore import RedisStore, text
from failboard.drivers.rq.safe import Unreadable, plain, read_pickle

__all__ = ["DEFAULT_QUEUE", "DramatiqStore", "ErrorRecord", "Message", "decode_message"]

DEFAULT_QUEUE = "default"
"""dramatiq's default queue: always looked at, configured or not."""
MAX_MESSAGE = 4_000_000
"""Bytes of one message we decode at most."""


class DramatiqStore(RedisStore):
    """The Redis connection and the key names of one project (a :class:`ScoredSets`)."""

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
        self.ns = options.namespace

    # -- keys ------------------------------------------------------------------------------

    def zset(self, queue: str) -> str:
        return keys.xq_key(self.ns, queue)

    def xq_messages(self, queue: str) -> str:
        return keys.xq_messages_key(self.ns, queue)

    def error(self, redis_message_id: str) -> str:
        return keys.error_key(self.ns, redis_message_id)

    # -- scores: the dead-letter time in ms ------------------------------------------------

    def score_of(self, queue: str, at: datetime) -> float:
        return at.timestamp() * 1000

    def time_of(self, queue: str, score: float) -> datetime | None:
        return datetime.fromtimestamp(score / 1000, UTC)

    def floor(self, now: float) -> float | None:
        # dramatiq prunes dead letters past dead_message_ttl lazily; until then they are real
        # messages that can still be retried, so they are shown.
        return None

    # -- queues ----------------------------------------------------------------------------

    def queue_names(self) -> list[str]:
        """The configured queues, else ``default`` and every queue the middleware recorded."""
        if self.options.queues:
            return list(self.options.queues)
        found = {keys.canonical(text(m)) for m in self.redis.smembers(keys.queues_key(self.ns))}
        return sorted(found | {DEFAULT_QUEUE})

    def locate(self, ids: list[str]) -> dict[str, tuple[str, float]]:
        """Which queue's dead-letter set holds each id, and its score (pipelined ZSCOREs)."""
        queues = self.queue_names()
        pipe = self.redis.pipeline(transaction=False)
        for rid in ids:
            for queue in queues:
                pipe.zscore(self.zset(queue), rid)
        replies = pipe.execute() if ids else []
        found: dict[str, tuple[str, float]] = {}
        for index, rid in enumerate(ids):
            for offset, queue in enumerate(queues):
                score = replies[index * len(queues) + offset]
                if score is not None:
                    found[rid] = (queue, float(score))
                    break
        return found


@dataclass(slots=True)
class Message:
    """What a dead-lettered message says, decoded without running anything."""

    fields: dict[str, Any] = field(default_factory=dict)
    encoding: str = "json"
    error: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        value = self.fields.get("options")
        return value if isinstance(value, dict) else {}

    def get(self, name: str) -> str | None:
        value = self.fields.get(name)
        return value if isinstance(value, str) and value else None

    @property
    def attempts(self) -> int | None:
        # The stored copy is the one enqueued for the final attempt: its retries count the
        # failures before it.
        retries = self.options.get("retries", 0)
        return retries + 1 if isinstance(retries, int) and not isinstance(retries, bool) else None


def decode_message(raw: bytes | None) -> Message | None:
    """A message from ``<queue>.XQ.msgs``; None when it is gone."""
    if raw is None:
        return None
    if len(raw) > MAX_MESSAGE:
        return Message(encoding="unknown", error=f"{len(raw):,} bytes: too large to show")
    try:
        value: Any = json.loads(raw)
        encoding = "json"
    except (ValueError, UnicodeDecodeError):
        try:
            value = plain(read_pickle(raw))
            encoding = "pickle (read without unpickling)"
        except Unreadable as exc:
            return Message(encoding="unknown", error=str(exc))
    if not isinstance(value, dict):
        return Message(encoding=encoding, error="not a dramatiq message")
    return Message(fields=value, encoding=encoding)


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """The final error the middleware recorded for one dead letter."""

    exception_class: str | None
    exception_message: str | None
    traceback: str | None
    worker: str | None = None

    @classmethod
    def decode(cls, raw: bytes | None, limit: int | None = None) -> ErrorRecord | None:
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(value, dict):
            return None

        def field_(name: str, cut: int | None = limit) -> str | None:
            item = value.get(name)
            return text(item, cut) if isinstance(item, str) and item else None

        return cls(
            exception_class=field_("exception_class", 255),
            exception_message=field_("exception_message", 10_000),
            traceback=field_("traceback"),
            worker=field_("worker", 255),
        )

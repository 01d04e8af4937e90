"""Reads one Dramatiq project's dead letters in Redis, joined with the errors the middleware
recorded.

A list page costs two round trips whatever the sets' sizes: the page's entries (one
``ZREVRANGEBYSCORE … LIMIT`` per queue, pipelined, merged newest first), then each message and
its error record (pipelined). A dead-lettered message carries no final error; without the
middleware's record the reader shows the traceback of the attempt before (dramatiq's
``options.traceback``), marked as such on the detail page.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from failboard.drivers.base import Count, JobKey
from failboard.drivers.dramatiq.options import CAPABILITIES, Options
from failboard.drivers.dramatiq.store import DramatiqStore, ErrorRecord, Message, decode_message
from failboard.drivers.redispages import (
    FILTER_BATCH,
    SCAN_CAP,
    Entry,
    Walk,
    Window,
    fetch,
    locate,
    score_range,
)
from failboard.drivers.rq.safe import plain
from failboard.fingerprint import fingerprint, split_exception
from failboard.models import FailedJob, FailedJobDetail, JobQuery

__all__ = ["SCAN_CAP", "DramatiqReader"]

LIST_TEXT = 64_000
"""Characters of a traceback a list row keeps: the class and message are at its end."""


@dataclass(slots=True)
class _Row:
    entry: Entry
    message: Message | None
    error: ErrorRecord | None

    @property
    def exception(self) -> str | None:
        """The final error's text, else the previous attempt's traceback (dramatiq's own)."""
        if self.error is not None:
            return _error_text(self.error)
        if self.message is not None:
            earlier = self.message.options.get("traceback")
            return earlier if isinstance(earlier, str) and earlier else None
        return None


class DramatiqReader:
    """The Reader (see :class:`failboard.drivers.base.Reader`) of one Dramatiq project whose
    broker is Redis."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        project: str,
        url: str,
        options: Options | None = None,
        *,
        timeout: float = 2.0,
        client: redis.Redis | None = None,
    ) -> None:
        self.project = project
        self.options = options or Options()
        self._store = DramatiqStore(project, url, self.options, timeout=timeout, client=client)

    # -- Reader ----------------------------------------------------------------------------

    def list(self, query: JobQuery) -> list[FailedJob]:
        """Up to ``query.limit`` jobs in ``query.order``, resuming strictly past ``query.seek``."""
        store = self._store
        queues = self._queues_for(query)
        if not queues:
            return []
        filtered = bool(query.name or query.exception or query.q)
        batch = max(query.limit, FILTER_BATCH) if filtered else query.limit
        out: list[FailedJob] = []
        with store.errors():
            for entries in Walk(store, queues, query, batch, query.seek):
                for row in self._hydrate(entries, LIST_TEXT):
                    job = self._item(row)
                    if _matches(job, row, query):
                        out.append(job)
                        if len(out) >= query.limit:
                            return out
        return out

    def keys(self, query: JobQuery) -> builtins.list[JobKey | FailedJob]:
        """Where the jobs :meth:`list` would return sit, from the sorted sets alone; with a
        filter Redis cannot apply, the rows themselves (they were read whole to filter them)."""
        if query.name or query.exception or query.q:
            return [*self.list(query)]
        store = self._store
        queues = self._queues_for(query)
        if not queues:
            return []
        with store.errors():
            entries = fetch(store, queues, Window.of(query, query.seek), query.limit)
        return [JobKey(entry.failed_at, entry.sort_key) for entry in entries]

    def fetch(self, sort_keys: Sequence[str]) -> builtins.list[FailedJob]:
        """The list rows of the jobs with these sort keys (``queue \\x1f job id``)."""
        store = self._store
        with store.errors():
            entries = locate(store, sort_keys)
            return [self._item(row) for row in self._hydrate(entries, LIST_TEXT)]

    def get(self, job_id: str) -> FailedJobDetail | None:
        """One dead letter in full (``job_id`` is its redis message id), or None when gone."""
        store = self._store
        rid = str(job_id)
        with store.errors():
            found = store.locate([rid]).get(rid)
            if found is None:
                return None
            queue, score = found
            (row,) = self._hydrate([Entry(queue, rid, score, store.time_of(queue, score))], None)
        item = self._item(row)
        message = row.message
        extra: dict[str, Any] = {"redis_message_id": rid}
        if message is None:
            extra["note"] = "the message is gone from the dead-letter hash; only its entry"
        else:
            extra["encoding"] = message.encoding
            if message.error:
                extra["decode_error"] = message.error
            options = {k: v for k, v in message.options.items() if k != "traceback"}
            if options:
                extra["options"] = plain(options)
            stamp = message.fields.get("message_timestamp")
            if isinstance(stamp, int):
                extra["message_timestamp"] = stamp
        if row.error is None and row.exception:
            extra["traceback_note"] = (
                "traceback of the attempt before the last (dramatiq keeps no final error): "
                "install failboard.integrations.dramatiq.FailboardMiddleware to record it"
            )
        elif row.error is not None and row.error.worker:
            extra["worker"] = row.error.worker
        fields = message.fields if message is not None else {}
        return FailedJobDetail(
            **item.model_dump(),
            sort_key=item.sort_key,
            payload=plain({k: v for k, v in fields.items() if k != "options"}) or None,
            args={"args": plain(fields.get("args")), "kwargs": plain(fields.get("kwargs"))}
            if message is not None
            else None,
            exception=row.exception,
            extra=extra,
        )

    def count(self, query: JobQuery, cap: int = 10_000) -> Count:
        """How many jobs match ``query`` (its seek and limit ignored), counting to ``cap``."""
        store = self._store
        queues = self._queues_for(query)
        if not queues:
            return Count(0)
        query = query.model_copy(update={"seek": None})
        if query.name or query.exception or query.q:
            found, complete = self._scan_count(query, queues, cap + 1)
            return Count(min(found, cap), capped=found > cap or not complete)
        with store.errors():
            pipe = store.redis.pipeline(transaction=False)
            window = Window.of(query, None)
            for queue in queues:
                r = score_range(store, queue, window, time.time())
                pipe.zcount(store.zset(queue), r.spec(r.lo, r.lo_open), r.spec(r.hi, r.hi_open))
            total = sum(int(n) for n in pipe.execute())
        return Count(min(total, cap), capped=total > cap)

    def queues(self) -> builtins.list[str]:
        """The queues whose dead-letter set holds messages, sorted."""
        store = self._store
        with store.errors():
            names = store.queue_names()
            pipe = store.redis.pipeline(transaction=False)
            for queue in names:
                pipe.exists(store.zset(queue))
            present = pipe.execute()
        return [name for name, there in zip(names, present, strict=True) if there]

    def ping(self) -> None:
        with self._store.errors():
            self._store.redis.ping()

    def close(self) -> None:
        self._store.close()

    # -- helpers ---------------------------------------------------------------------------

    def _queues_for(self, query: JobQuery) -> builtins.list[str]:
        if query.connection is not None:
            return []  # Dramatiq has no connections: nothing matches one
        if query.queue is not None:
            if self.options.queues and query.queue not in self.options.queues:
                return []
            return [query.queue]
        with self._store.errors():
            return self._store.queue_names()

    def _scan_count(
        self, query: JobQuery, queues: builtins.list[str], limit: int
    ) -> tuple[int, bool]:
        """Matches among at most SCAN_CAP entries; whether the scan reached the end."""
        store = self._store
        walk = Walk(store, queues, query, FILTER_BATCH, None)
        found = 0
        with store.errors():
            for entries in walk:
                for row in self._hydrate(entries, LIST_TEXT):
                    found += _matches(self._item(row), row, query)
                if found >= limit:
                    break
        return found, walk.complete

    def _hydrate(self, entries: builtins.list[Entry], limit: int | None) -> builtins.list[_Row]:
        if not entries:
            return []
        store = self._store
        pipe = store.redis.pipeline(transaction=False)
        for entry in entries:
            pipe.hget(store.xq_messages(entry.queue), entry.job_id)
            pipe.get(store.error(entry.job_id))
        replies = pipe.execute()
        return [
            _Row(
                entry,
                decode_message(replies[2 * i]),
                ErrorRecord.decode(replies[2 * i + 1], limit),
            )
            for i, entry in enumerate(entries)
        ]

    def _item(self, row: _Row) -> FailedJob:
        message = row.message
        name = message.get("actor_name") if message is not None else None
        exception_class: str | None
        exception_message: str | None
        if row.error is not None and row.error.exception_class:
            exception_class = row.error.exception_class
            exception_message = row.error.exception_message
        else:
            parts = split_exception(row.exception)
            exception_class, exception_message = parts.exception_class, parts.message
        return FailedJob(
            project=self.project,
            id=row.entry.job_id,
            uuid=message.get("message_id") if message is not None else None,
            queue=row.entry.queue,
            name=name,
            exception_class=exception_class,
            exception_message=exception_message,
            failed_at=row.entry.failed_at,
            attempts=message.attempts if message is not None else None,
            fingerprint=fingerprint(exception_class, exception_message, name),
            sort_key=row.entry.sort_key,
        )


def _error_text(error: ErrorRecord) -> str | None:
    if error.traceback:
        return error.traceback
    if error.exception_class:
        return f"{error.exception_class}: {error.exception_message or ''}".rstrip()
    return error.exception_message


def _matches(job: FailedJob, row: _Row, query: JobQuery) -> bool:
    if query.name and (job.name or "").lower() != query.name.lower():
        return False
    if query.exception and query.exception.lower() not in (row.exception or "").lower():
        return False
    if query.q:
        needle = query.q.lower()
        haystack = (row.exception or "", job.name or "", job.queue or "", job.id, job.uuid or "")
        if not any(needle in part.lower() for part in haystack):
            return False
    return True

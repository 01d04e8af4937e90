"""Reads one project's RQ failed-job registries (rq 2.x and 3.x) without unpickling anything.

A list page costs two round trips to Redis whatever the registry sizes: the page's registry
entries (one ``ZREVRANGEBYSCORE … LIMIT`` per queue, pipelined), then for each job a few fields
of its hash and the newest entry of its results stream (pipelined). Job data is a pickle written
by the project's code: the reader shows the ``description`` rq wrote beside it, never the pickle.
"""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from failboard.drivers.base import Count, JobKey
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
from failboard.drivers.rq.options import CAPABILITIES, Options
from failboard.drivers.rq.safe import describe_serialized
from failboard.drivers.rq.store import (
    RqStore,
    decode_exc_info,
    decode_exc_string,
    parse_time,
    text,
)
from failboard.fingerprint import fingerprint, split_exception
from failboard.models import FailedJob, FailedJobDetail, JobQuery

__all__ = ["SCAN_CAP", "RqReader", "job_name"]

LIST_TEXT = 64_000
"""Characters of an exception a list row inflates: the class and message are at the end of a
Python traceback, so a longer one is read whole only on the detail page."""

_LIST_FIELDS = ("origin", "description", "ended_at", "status", "failure_ttl")
_DETAIL_FIELDS = (
    "origin",
    "description",
    "status",
    "created_at",
    "enqueued_at",
    "started_at",
    "ended_at",
    "worker_name",
    "timeout",
    "result_ttl",
    "failure_ttl",
    "ttl",
    "retries_left",
    "number_of_retries",
    "retry_intervals",
    "group_id",
    "dependency_ids",
    "rate_limit_key",
    "last_heartbeat",
)
_NAME = re.compile(r"[A-Za-z_\\][\w.\\:<>-]*")


def job_name(description: str | None) -> str | None:
    """The function path rq puts at the head of a job's description (``pkg.mod.func(1, 'a')``)."""
    if not description:
        return None
    head = description.split("(", 1)[0].strip()
    return head if _NAME.fullmatch(head) else None


@dataclass(slots=True)
class _Row:
    entry: Entry
    fields: dict[str, bytes | None]
    exception: str | None


class RqReader:
    """The Reader (see :class:`failboard.drivers.base.Reader`) of one RQ project."""

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
        self._store = RqStore(project, url, self.options, timeout=timeout, client=client)

    # -- Reader ----------------------------------------------------------------------------

    def list(self, query: JobQuery) -> list[FailedJob]:
        """Up to ``query.limit`` jobs in ``query.order``, resuming strictly past ``query.seek``.

        ``failed_after`` and ``failed_before`` are inclusive bounds, in whole seconds."""
        store = self._store
        queues = self._queues_for(query)
        if queues is None:
            return []
        filtered = bool(query.name or query.exception or query.q)
        batch = max(query.limit, FILTER_BATCH) if filtered else query.limit
        out: list[FailedJob] = []
        with store.errors():
            for entries in Walk(store, queues, query, batch, query.seek):
                for row in self._hydrate(entries):
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
        if queues is None:
            return []
        with store.errors():
            entries = fetch(store, queues, Window.of(query, query.seek), query.limit)
        if any(entry.failed_at is None for entry in entries):
            # Kept-forever entries take their time from the job's hash: read the page whole.
            return [*self.list(query)]
        return [JobKey(entry.failed_at, entry.sort_key) for entry in entries]

    def fetch(self, sort_keys: Sequence[str]) -> builtins.list[FailedJob]:
        """The list rows of the jobs with these sort keys (``queue \\x1f job id``)."""
        store = self._store
        with store.errors():
            entries = locate(store, sort_keys)
            return [self._item(row) for row in self._hydrate(entries)]

    def get(self, job_id: str) -> FailedJobDetail | None:
        """One failed job in full, or None when it is no longer in a failed registry."""
        store = self._store
        job_id = str(job_id)
        with store.errors():
            origin = text(store.redis.hget(store.job(job_id), "origin")) or None
            candidates = [origin] if origin else store.queue_names()
            pipe = store.redis.pipeline(transaction=False)
            for queue in candidates:
                pipe.zscore(store.failed(queue), job_id)
            scores = pipe.execute() if candidates else []
            found = [(q, s) for q, s in zip(candidates, scores, strict=True) if s is not None]
            if not found:
                return None
            queue, score = found[0]
            entry = Entry(queue, job_id, float(score), store.time_of(queue, float(score)))
            pipe = store.redis.pipeline(transaction=False)
            pipe.hmget(store.job(job_id), [*_DETAIL_FIELDS, "exc_info", "data", "meta"])
            pipe.xrevrange(store.results(job_id), "+", "-", count=1)
            values, results = pipe.execute()
        fields = dict(zip([*_DETAIL_FIELDS, "exc_info", "data", "meta"], values, strict=True))
        result = _latest(results)
        exception = decode_exc_string(result.get(b"exc_string")) or decode_exc_info(
            fields.get("exc_info")
        )
        item = self._item(_Row(entry, fields, exception))
        extra: dict[str, Any] = {
            key: text(fields.get(key))
            for key in _DETAIL_FIELDS
            if key not in ("origin", "description") and fields.get(key)
        }
        if result:
            extra["result_id"] = text(result.get(b"_id"))
            extra["result_worker"] = text(result.get(b"worker_name")) or None
        if fields.get("meta"):
            extra["meta"] = describe_serialized(fields["meta"], compressed=False)
        if not any(fields.get(k) for k in ("origin", "description", "data")):
            extra["note"] = "the job's hash is gone (expired or deleted); only its registry entry"
        payload = {
            "description": text(fields.get("description")) or None,
            "origin": text(fields.get("origin")) or None,
            "data": describe_serialized(fields.get("data"), compressed=True),
        }
        data = payload["data"]
        return FailedJobDetail(
            **item.model_dump(),
            sort_key=item.sort_key,
            payload=payload,
            args=data.get("args") if isinstance(data, dict) else None,
            exception=exception,
            extra=extra,
        )

    def count(self, query: JobQuery, cap: int = 10_000) -> Count:
        """How many jobs match ``query`` (its seek and limit ignored), counting to ``cap``."""
        store = self._store
        queues = self._queues_for(query)
        if queues is None:
            return Count(0)
        query = query.model_copy(update={"seek": None})
        if query.name or query.exception or query.q:
            # No index to count with: count what a bounded scan finds.
            jobs, complete = self._scan_count(query, cap + 1)
            return Count(min(jobs, cap), capped=jobs > cap or not complete)
        with store.errors():
            pipe = store.redis.pipeline(transaction=False)
            window = Window.of(query, None)
            for queue in queues:
                lo, hi = _bounds(store, queue, window)
                pipe.zcount(store.failed(queue), lo, hi)
            total = sum(int(n) for n in pipe.execute()) if queues else 0
        return Count(min(total, cap), capped=total > cap)

    def queues(self) -> builtins.list[str]:
        """The queues whose failed registry holds jobs, sorted."""
        store = self._store
        with store.errors():
            names = store.queue_names()
            pipe = store.redis.pipeline(transaction=False)
            for queue in names:
                pipe.exists(store.failed(queue))
            present = pipe.execute() if names else []
        return [name for name, there in zip(names, present, strict=True) if there]

    def ping(self) -> None:
        """Reach Redis."""
        with self._store.errors():
            self._store.redis.ping()

    def close(self) -> None:
        self._store.close()

    # -- helpers ---------------------------------------------------------------------------

    def _queues_for(self, query: JobQuery) -> builtins.list[str] | None:
        if query.connection is not None:
            return None  # RQ has no connections: nothing matches one
        if query.queue is not None:
            if self.options.queues and query.queue not in self.options.queues:
                return None
            return [query.queue]
        with self._store.errors():
            return self._store.queue_names()

    def _scan_count(self, query: JobQuery, limit: int) -> tuple[int, bool]:
        """Matches among at most SCAN_CAP entries; whether the scan reached the end."""
        store = self._store
        walk = Walk(store, self._queues_for(query) or [], query, FILTER_BATCH, None)
        found = 0
        with store.errors():
            for entries in walk:
                for row in self._hydrate(entries):
                    found += _matches(self._item(row), row, query)
                if found >= limit:
                    break
        return found, walk.complete

    def _hydrate(self, entries: builtins.list[Entry]) -> builtins.list[_Row]:
        if not entries:
            return []
        store = self._store
        pipe = store.redis.pipeline(transaction=False)
        for entry in entries:
            pipe.hmget(store.job(entry.job_id), _LIST_FIELDS)
            pipe.xrevrange(store.results(entry.job_id), "+", "-", count=1)
        replies = pipe.execute()
        rows = []
        old_style = []
        for index, entry in enumerate(entries):
            fields = dict(zip(_LIST_FIELDS, replies[2 * index], strict=True))
            result = _latest(replies[2 * index + 1])
            exception = decode_exc_string(result.get(b"exc_string"), LIST_TEXT)
            row = _Row(entry, fields, exception)
            if exception is None and fields.get("origin"):
                old_style.append(row)
            rows.append(row)
        if old_style:
            # rq < 2 kept the traceback in the hash; read it only for jobs without a result.
            pipe = store.redis.pipeline(transaction=False)
            for row in old_style:
                pipe.hget(store.job(row.entry.job_id), "exc_info")
            for row, raw in zip(old_style, pipe.execute(), strict=True):
                row.exception = decode_exc_info(raw, LIST_TEXT)
        return rows

    def _item(self, row: _Row) -> FailedJob:
        entry, fields = row.entry, row.fields
        description = text(fields.get("description"), 2_000) or None
        name = job_name(description)
        parts = split_exception(row.exception)
        failed_at: datetime | None = entry.failed_at or parse_time(fields.get("ended_at"))
        return FailedJob(
            project=self.project,
            id=entry.job_id,
            queue=entry.queue,
            name=name,
            exception_class=parts.exception_class,
            exception_message=parts.message,
            failed_at=failed_at,
            fingerprint=fingerprint(parts.exception_class, parts.message, name),
            sort_key=entry.sort_key,
        )


def _latest(reply: Any) -> dict[bytes, bytes]:
    if not reply:
        return {}
    result_id, fields = reply[0]
    return {**fields, b"_id": result_id}


def _bounds(store: RqStore, queue: str, window: Window) -> tuple[str, str]:
    r = score_range(store, queue, window, time.time())
    return r.spec(r.lo, r.lo_open), r.spec(r.hi, r.hi_open)


def _matches(job: FailedJob, row: _Row, query: JobQuery) -> bool:
    if query.name and (job.name or "").lower() != query.name.lower():
        return False
    if query.exception and query.exception.lower() not in (row.exception or "").lower():
        return False
    if query.q:
        needle = query.q.lower()
        haystack = (
            row.exception or "",
            text(row.fields.get("description"), 2_000),
            job.queue or "",
            job.id,
        )
        if not any(needle in part.lower() for part in haystack):
            return False
    return True

"""Laravel Horizon's Redis records of jobs, as Horizon itself writes them.

Everything lives under Horizon's prefix (``horizon.prefix``, ``<app>_horizon:``):

- one hash per job, keyed by the job's id (its payload ``uuid``), with ``id``, ``connection``,
  ``queue``, ``name``, ``status``, ``payload``, ``exception``, ``context``, ``failed_at``,
  ``completed_at``, ``retried_by``, ``reserved_at`` (``RedisJobRepository::$keys``);
- sorted sets of ids — ``failed_jobs``, ``recent_failed_jobs``, ``recent_jobs``,
  ``pending_jobs``, ``completed_jobs`` … — scored by ``-microtime(true)``, so that ascending
  order is newest first.

What failboard does here is what Horizon's own code does:

- forget  = ``horizon:forget`` → ``RedisJobRepository::deleteFailed``: ZREM the id from
  ``failed_jobs`` and, when it was there, DEL its hash (``recent_failed_jobs`` is left to
  Horizon's trim, as Horizon leaves it);
- retry   = ``Jobs\\RetryFailedJob``: a *new* uuid (``id`` and ``uuid``), ``attempts`` 0,
  ``retry_of`` = the original id, ``retryUntil`` moved forward by the job's window; pushed
  through Horizon's ``RedisQueue::pushRaw`` (``JobPayload::prepare``: ``type``, ``tags``,
  ``pushedAt``; then the ``JobPushed`` listeners record the new job as pending), and
  ``storeRetryReference`` appends ``{id, status: pending, retried_at}`` to the original's
  ``retried_by``. The original stays in ``failed_jobs``, as in Horizon's UI.
"""

from __future__ import annotations

import json
import math
import time
import uuid as uuid_module
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failboard.drivers.laravel.payload import PayloadError, php_json_encode, reset_for_retry
from failboard.drivers.laravel.redis_queue import RedisQueue

if TYPE_CHECKING:
    import redis

__all__ = ["FIELDS", "HorizonJob", "HorizonStore", "php_microtime"]

FIELDS = (
    "id",
    "connection",
    "queue",
    "name",
    "status",
    "payload",
    "exception",
    "context",
    "failed_at",
    "completed_at",
    "retried_by",
    "reserved_at",
)
"""``RedisJobRepository::$keys``: the fields of a job hash."""

# deleteFailed: DEL only when the id was in failed_jobs (Horizon 5.x+), atomically.
_FORGET = """if redis.call('zrem', KEYS[1], ARGV[1]) == 1 then
    redis.call('del', KEYS[2])
    return 1
end
return 0"""

WATCH_ATTEMPTS = 5


def php_microtime(moment: float) -> str:
    """``str_replace(',', '.', microtime(true))``: PHP prints a float with 14 significant
    digits and no trailing zeros (``1764000000.1235``, ``1764000000.5``)."""
    text = f"{moment:.14g}"
    return text if "e" not in text else repr(moment)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class HorizonJob:
    """A failed job to retry on a Horizon application: its id, where it ran, and the payload the
    ``failed_jobs`` row keeps (used when Horizon has no record of it any more)."""

    uuid: str
    connection: str
    queue: str
    payload: str | None


class HorizonStore:
    """Horizon's records on one Redis database, under one prefix."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        pending_minutes: int = 60,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: str(uuid_module.uuid4()),
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.pending_minutes = pending_minutes
        self._clock = clock
        self._new_id = new_id

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    # -- reading ---------------------------------------------------------------------------

    def records(self, ids: Sequence[str]) -> dict[str, dict[str, str | None]]:
        """The hashes of ``ids`` that exist, field by field (``findFailed`` without the status
        test: the caller decides)."""
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.key(job_id), list(FIELDS))
        found: dict[str, dict[str, str | None]] = {}
        for job_id, values in zip(ids, pipe.execute(), strict=True):
            record = {field: _text(value) for field, value in zip(FIELDS, values, strict=True)}
            if record["id"] is not None:
                found[job_id] = record
        return found

    # -- forget ----------------------------------------------------------------------------

    def forget(self, ids: Sequence[str]) -> list[bool]:
        """``deleteFailed`` for each id: whether Horizon had it in ``failed_jobs``."""
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.eval(_FORGET, 2, self.key("failed_jobs"), self.key(job_id), job_id)
        return [bool(done) for done in pipe.execute()]

    # -- retry -----------------------------------------------------------------------------

    def retry(self, queue: RedisQueue, jobs: Sequence[HorizonJob]) -> int:
        """Retry ``jobs`` the way Horizon's retry button does (see the module docstring).

        A job Horizon no longer has as ``failed`` (trimmed after ``trim.failed`` minutes) is
        pushed the way ``php artisan queue:retry`` does on a Horizon application: same uuid,
        through Horizon's ``pushRaw``.

        When the queue and Horizon share one Redis database, every push and every record of a
        batch go in one MULTI/EXEC, under WATCH of the originals' hashes: all or nothing, and a
        concurrent retry from Horizon's UI makes us re-read instead of pushing blind. With two
        databases the queue is written first, Horizon's records second.
        """
        if not jobs:
            return 0
        same = _same_database(queue.client, self.client)
        keys = [self.key(job.uuid) for job in jobs]
        for _attempt in range(WATCH_ATTEMPTS):
            import redis as redis_module

            with self.client.pipeline(transaction=True) as pipe:
                try:
                    if same:
                        pipe.watch(*keys)  # type: ignore[no-untyped-call]
                    records = self._failed_records(pipe if same else self.client, keys)
                    monitored = self._monitored(pipe if same else self.client)
                    pushes, bookkeeping, horizon_only = self._plan(jobs, records, monitored)
                    pipe.multi()
                    if same:
                        for queue_name, payload in pushes:
                            queue.queue_push(pipe, queue_name, payload)
                    else:
                        queue.push(pushes)
                    for write in bookkeeping:
                        write(pipe)
                    pipe.execute()
                    return horizon_only
                except redis_module.WatchError:
                    continue
        raise redis_module.WatchError(
            f"Horizon's records of these jobs kept changing; gave up after {WATCH_ATTEMPTS} tries"
        )

    def _failed_records(self, reader: Any, keys: list[str]) -> list[tuple[str | None, ...]]:
        rows = []
        for key in keys:
            values = reader.hmget(key, ["status", "payload", "retried_by"])
            rows.append(tuple(_text(value) for value in values))
        return rows

    def _monitored(self, reader: Any) -> set[str]:
        return {_text(tag) or "" for tag in reader.smembers(self.key("monitoring"))}

    def _plan(
        self,
        jobs: Sequence[HorizonJob],
        records: list[tuple[str | None, ...]],
        monitored: set[str],
    ) -> tuple[list[tuple[str | None, str]], list[Callable[[Any], None]], int]:
        now = self._clock()
        pushes: list[tuple[str | None, str]] = []
        writes: list[Callable[[Any], None]] = []
        horizon_only = 0
        for job, (status, horizon_payload, retried_by) in zip(jobs, records, strict=True):
            if job.payload is None:
                # Only Horizon has it: no table row lock guards it, the WATCH does. Chosen
                # because it was failed and never retried; if that changed, someone else
                # retried or forgot it meanwhile: skipped.
                if status != "failed" or retried_by:
                    continue
                horizon_only += 1
            payload = None
            if status == "failed" and horizon_payload:
                new_id = self._new_id()
                try:
                    payload = retry_payload(horizon_payload, job.uuid, new_id, now)
                    writes.append(self._retry_reference(job.uuid, retried_by, new_id, now))
                except PayloadError:
                    payload = None  # Horizon's copy is unreadable: retry from the table's
            if payload is None:
                if job.payload is None:
                    raise PayloadError(f"Horizon has no failed record of {job.uuid}")
                payload = prepare(json.loads(reset_for_retry(job.payload, now)), now)
            pushes.append((job.queue, payload))
            writes.append(self._pushed(job.connection, job.queue, payload, now, monitored))
        return pushes, writes, horizon_only

    def _pushed(
        self, connection: str, queue: str, payload: str, now: float, monitored: set[str]
    ) -> Callable[[Any], None]:
        """The ``JobPushed`` listeners: ``StoreJob`` (``RedisJobRepository::pushed``) and
        ``StoreMonitoredTags`` (``RedisTagRepository::add``)."""
        decoded = json.loads(payload)
        job_id = str(decoded.get("uuid") or decoded.get("id"))
        stamp = php_microtime(now)
        tags = [tag for tag in decoded.get("tags") or [] if tag in monitored]

        def write(pipe: Any) -> None:
            score = php_microtime(-now)
            pipe.zadd(self.key("recent_jobs"), {job_id: score})
            pipe.zadd(self.key("pending_jobs"), {job_id: score})
            pipe.hset(
                self.key(job_id),
                mapping={
                    "id": job_id,
                    "connection": connection,
                    "queue": queue,
                    "name": decoded.get("displayName") or "",
                    "status": "pending",
                    "payload": payload,
                    "created_at": stamp,
                    "updated_at": stamp,
                },
            )
            pipe.expireat(self.key(job_id), int(now) + self.pending_minutes * 60)
            for tag in tags:
                pipe.zadd(self.key(tag), {job_id: stamp})

        return write

    def _retry_reference(
        self, original: str, retried_by: str | None, new_id: str, now: float
    ) -> Callable[[Any], None]:
        """``storeRetryReference``: append to the original's ``retried_by`` JSON list."""
        try:
            retries = json.loads(retried_by) if retried_by else []
        except ValueError:
            retries = []
        if not isinstance(retries, list):
            retries = []
        retries.append({"id": new_id, "status": "pending", "retried_at": int(now)})
        text = php_json_encode(retries, unescaped_unicode=False)

        def write(pipe: Any) -> None:
            pipe.hset(self.key(original), "retried_by", text)

        return write


def retry_payload(payload: str, original: str, new_id: str, now: float) -> str:
    """``RetryFailedJob::preparePayload`` then Horizon's ``pushRaw`` (``JobPayload::prepare``)."""
    try:
        decoded = json.loads(payload)
    except ValueError as exc:
        raise PayloadError("the payload Horizon keeps is not valid JSON") from exc
    if not isinstance(decoded, dict):
        raise PayloadError("the payload Horizon keeps is not a JSON object")
    decoded.update(
        {
            "id": new_id,
            "uuid": new_id,
            "attempts": 0,
            "retry_of": original,
            "retryUntil": _new_timeout(decoded, now),
        }
    )
    return prepare(decoded, now)


def prepare(decoded: Mapping[str, Any], now: float) -> str:
    """``JobPayload::prepare`` for a raw push (no job object: ``type`` is ``job``, the tags are
    the payload's own), re-encoded with PHP's plain ``json_encode`` as Horizon does."""
    merged = dict(decoded)
    tags = merged.get("tags")
    merged.update(
        {
            "type": "job",
            "tags": list(tags) if isinstance(tags, list) else [],
            "pushedAt": php_microtime(now),
        }
    )
    return php_json_encode(merged, unescaped_unicode=False)


def _new_timeout(payload: Mapping[str, Any], now: float) -> int | None:
    """``RetryFailedJob::prepareNewTimeout``: now + ceil(retryUntil - pushedAt), or null."""
    retry_until = payload.get("retryUntil")
    if retry_until is None:
        retry_until = payload.get("timeoutAt")
    if not retry_until:
        return None
    try:
        pushed_at = float(payload.get("pushedAt") or now)
        window = math.ceil(float(retry_until) - pushed_at)
    except (TypeError, ValueError):
        return None
    return int(now) + window


def _same_database(one: redis.Redis, other: redis.Redis) -> bool:
    if one is other:
        return True
    a = one.connection_pool.connection_kwargs
    b = other.connection_pool.connection_kwargs
    keys = ("host", "port", "db", "path")
    return all(a.get(key) == b.get(key) for key in keys)

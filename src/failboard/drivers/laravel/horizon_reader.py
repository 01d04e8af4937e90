"""Reads failed jobs from Horizon's own Redis records (``horizon_source = "horizon"``).

Horizon keeps the ids of failed jobs in the sorted set ``failed_jobs``, scored by
``-microtime(true)`` at failure (ascending = newest first), and one hash per job (see
:mod:`.horizon`). Horizon trims both after ``trim.failed`` minutes (a week by default), so the
set stays as large as a week of failures at most. Redis cannot filter inside hashes: the reader
walks the set in score order, a chunk of hashes per round trip, and filters in Python — bounded
by ``MAX_SCAN`` entries per call, which a page with a rare filter may reach (it then ends early,
and the next page resumes from where this one stopped looking only if it returned rows).

A job Horizon has already retried (its ``retried_by`` is set) is not listed: its retry is a job
of its own, listed with ``retry_of`` when it fails again. One that is no longer ``failed`` (its
hash was re-used by ``queue:retry``, horizon #290) is not listed either.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from failboard.drivers.base import Count
from failboard.drivers.laravel.horizon import HorizonStore
from failboard.drivers.laravel.options import CAPABILITIES, Options
from failboard.drivers.laravel.payload import decode_payload, json_string, payload_summary
from failboard.drivers.laravel.redis_queue import connect, redis_errors
from failboard.exceptions import StoreError
from failboard.fingerprint import fingerprint, split_exception
from failboard.models import FailedJob, FailedJobDetail, JobQuery, Seek, to_utc

if TYPE_CHECKING:
    import redis

__all__ = ["MAX_SCAN", "HorizonReader", "horizon_extra", "iter_failed"]

CHUNK = 200
MAX_SCAN = 100_000
"""Entries of ``failed_jobs`` one call looks at, at most."""
_MARGIN = 0.001  # scores carry 4 decimals; a datetime bound is widened by this, then exact


Entry = tuple[str, datetime, dict[str, str | None]]


def _when(score: float) -> datetime:
    return datetime.fromtimestamp(round(-score, 6), tz=UTC)


def iter_failed(
    store: HorizonStore,
    order: str = "newest",
    start: datetime | None = None,
    stop: datetime | None = None,
) -> Iterator[builtins.list[Entry]]:
    """Chunks of ``(id, failed_at, record)`` from ``failed_jobs`` in ``order``, each chunk
    sorted by ``(failed_at, id)`` (descending for newest) and holding whole groups of equal
    scores. ``start``/``stop`` bound failed_at (loosely; callers filter exactly)."""
    key = store.key("failed_jobs")
    client = store.client
    newest = order == "newest"
    if newest:
        low: str = "-inf" if start is None else repr(-start.timestamp() - _MARGIN)
        high: str = "+inf" if stop is None else repr(-stop.timestamp() + _MARGIN)
    else:
        high = "+inf" if start is None else repr(-start.timestamp() + _MARGIN)
        low = "-inf" if stop is None else repr(-stop.timestamp() - _MARGIN)
    scanned = 0
    while scanned < MAX_SCAN:
        members: list[tuple[Any, float]]
        if newest:
            members = list(
                client.zrangebyscore(key, low, high, start=0, num=CHUNK, withscores=True)  # type: ignore[arg-type]
            )
        else:
            members = list(
                client.zrevrangebyscore(key, high, low, start=0, num=CHUNK, withscores=True)  # type: ignore[arg-type]
            )
        if not members:
            return
        last = members[-1][1]
        if len(members) == CHUNK:  # finish the tie group the chunk cut into
            ties: list[tuple[Any, float]] = list(
                client.zrangebyscore(key, last, last, withscores=True)  # type: ignore[arg-type]
            )
            seen = {m for m, _ in members}
            members += [(m, s) for m, s in ties if m not in seen]
        scanned += len(members)
        ids = [m.decode() if isinstance(m, bytes) else str(m) for m, _ in members]
        records = store.records(ids)
        chunk = [
            (job_id, _when(score), records[job_id])
            for job_id, (_, score) in zip(ids, members, strict=True)
            if job_id in records
        ]
        chunk.sort(key=lambda e: (e[1], e[0]), reverse=newest)
        yield chunk
        if newest:
            low = f"({last!r}"
        else:
            high = f"({last!r}"


def listable(record: dict[str, str | None]) -> bool:
    """Failed, and not retried yet (see the module docstring)."""
    return record.get("status") == "failed" and not record.get("retried_by")


class HorizonReader:
    """The Reader (see :class:`failboard.drivers.base.Reader`) over Horizon's records."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        project: str,
        options: Options,
        *,
        client: redis.Redis | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.project = project
        self.options = options
        url = options.horizon_redis_url
        if client is None:
            if url is None:
                raise StoreError(
                    f"project {project}: horizon_source = 'horizon' needs redis_url or horizon_url"
                )
            client = connect(url, self.what, timeout)
        self._store = HorizonStore(client, options.horizon_prefix)

    @property
    def what(self) -> str:
        return f"project {self.project}"

    # -- Reader ----------------------------------------------------------------------------

    def list(self, query: JobQuery) -> builtins.list[FailedJob]:
        found: list[FailedJob] = []
        for entry in self._matching(query):
            found.append(self._item(*entry))
            if len(found) >= query.limit:
                break
        return found

    def get(self, job_id: str) -> FailedJobDetail | None:
        with self._errors():
            record = self._store.records([job_id]).get(job_id)
        if record is None or record.get("status") != "failed":
            return None
        item = self._item(job_id, _failed_at(record), record)
        payload = decode_payload(record.get("payload"))
        extra = _payload_extra(payload)
        extra.update(horizon_extra(record))
        return FailedJobDetail(
            **item.model_dump(),
            payload=payload,
            exception=record.get("exception"),
            max_tries=payload_summary(record.get("payload"), complete=True).get("maxTries"),
            extra=extra,
        )

    def count(self, query: JobQuery, cap: int = 10_000) -> Count:
        value = 0
        for _ in self._matching(query.model_copy(update={"seek": None})):
            value += 1
            if value >= cap:
                return Count(value, capped=True)
        return Count(value)

    def queues(self) -> builtins.list[str]:
        names: set[str] = set()
        with self._errors():
            for chunk in iter_failed(self._store):
                names.update(r["queue"] or "" for _, _, r in chunk if listable(r))
        return sorted(name for name in names if name)

    def ping(self) -> None:
        with self._errors():
            self._store.client.ping()

    def close(self) -> None:
        self._store.client.close()

    # -- helpers ---------------------------------------------------------------------------

    def _errors(self) -> Any:
        return _RedisErrors(self.what)

    def _matching(self, query: JobQuery) -> Iterator[Entry]:
        newest = query.order == "newest"
        start = query.failed_before if newest else query.failed_after
        stop = query.failed_after if newest else query.failed_before
        if query.seek is not None:
            seek_at = to_utc(query.seek.failed_at)
            start = seek_at if start is None else (min if newest else max)(to_utc(start), seek_at)
        with self._errors():
            for chunk in iter_failed(self._store, query.order, start, stop):
                for job_id, failed_at, record in chunk:
                    if not listable(record) or not _past_seek(
                        query.seek, newest, failed_at, job_id
                    ):
                        continue
                    if _matches(query, failed_at, record):
                        yield job_id, failed_at, record

    def _item(self, job_id: str, failed_at: datetime, record: dict[str, str | None]) -> FailedJob:
        summary = payload_summary(record.get("payload"), complete=True)
        name = summary.get("displayName") or record.get("name") or summary.get("commandName")
        parts = split_exception(record.get("exception"))
        return FailedJob(
            project=self.project,
            id=job_id,
            uuid=job_id,
            connection=record.get("connection"),
            queue=record.get("queue"),
            name=name,
            exception_class=parts.exception_class,
            exception_message=parts.message,
            failed_at=failed_at,
            attempts=summary.get("attempts"),
            fingerprint=fingerprint(parts.exception_class, parts.message, name),
            sort_key=job_id,
        )


class _RedisErrors:
    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        import redis as redis_module

        if isinstance(exc, redis_module.RedisError):
            raise redis_errors(self.what, exc) from exc


def _failed_at(record: dict[str, str | None]) -> datetime:
    try:
        return datetime.fromtimestamp(float(record.get("failed_at") or 0), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.fromtimestamp(0, tz=UTC)


def _past_seek(seek: Seek | None, newest: bool, failed_at: datetime, job_id: str) -> bool:
    if seek is None:
        return True
    at = to_utc(seek.failed_at)
    if seek.sort_key is None:
        if seek.ties == "keep":
            return failed_at <= at if newest else failed_at >= at
        return failed_at < at if newest else failed_at > at
    here = (failed_at, job_id)
    there = (at, seek.sort_key)
    return here < there if newest else here > there


def _matches(query: JobQuery, failed_at: datetime, record: dict[str, str | None]) -> bool:
    if query.queue is not None and record.get("queue") != query.queue:
        return False
    if query.connection is not None and record.get("connection") != query.connection:
        return False
    if query.failed_after is not None and failed_at < to_utc(query.failed_after):
        return False
    if query.failed_before is not None and failed_at > to_utc(query.failed_before):
        return False
    payload = record.get("payload") or ""
    exception = (record.get("exception") or "").lower()
    if query.name:
        name = payload_summary(payload, complete=True).get("displayName") or record.get("name")
        if (name or "").lower() != query.name.lower():
            return False
    if query.exception and query.exception.lower() not in exception:
        return False
    if query.q:
        q = query.q.lower()
        texts = (payload.lower(), exception, (record.get("queue") or "").lower())
        needles = {q, json_string(query.q)[1:-1].lower()}
        if not any(needle in text for needle in needles for text in texts):
            return False
    return True


def _payload_extra(payload: Any) -> dict[str, Any]:
    from failboard.drivers.laravel.reader import payload_extra

    return payload_extra(payload)


def horizon_extra(record: dict[str, str | None]) -> dict[str, Any]:
    """What Horizon knows of a job beyond its payload, for the detail page."""
    extra: dict[str, Any] = {"horizon_status": record.get("status")}
    for field in ("retried_by", "context"):
        value = record.get(field)
        if value:
            extra[field] = decode_payload(value)
    return extra

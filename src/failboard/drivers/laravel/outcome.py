"""What one retry batch found and decided, and the small pure helpers of the executor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from failboard.drivers.base import ResultTally
from failboard.drivers.laravel.horizon import HorizonJob
from failboard.drivers.laravel.store import FailedTable

__all__ = ["Outcome", "is_redis_error", "jobs_row", "match", "no_redis_url", "unknown_connection"]


class Outcome:
    """What one batch did; applied to the tally only once its transaction committed."""

    def __init__(self) -> None:
        self.pushed: list[int] = []  # failed_jobs ids to delete
        self.pushes: list[dict[str, Any]] = []  # jobs rows to insert
        self.redis: list[tuple[str | None, str]] = []  # (queue, payload) for RedisQueue
        self.horizon: list[HorizonJob] = []  # jobs to retry the way Horizon does
        self.missing = 0
        self.missing_keys: list[str] = []  # not in the table: Horizon may still have them
        self.horizon_only = 0  # of self.horizon, jobs only Horizon had, retried
        self.failures: list[tuple[str, str]] = []

    def fail(self, job_id: str, reason: str) -> None:
        self.failures.append((job_id, reason))

    def apply(self, tally: ResultTally) -> None:
        tally.succeeded += len(self.pushed) + self.horizon_only
        tally.missing += self.missing - self.horizon_only
        for job_id, reason in self.failures:
            tally.fail(job_id, reason)


def jobs_row(row: Any, payload: str, now: int) -> dict[str, Any]:
    # DatabaseQueue::buildDatabaseRecord: the ORIGINAL queue, attempts 0, available now.
    return {
        "queue": row.queue,
        "payload": payload,
        "attempts": 0,
        "reserved_at": None,
        "available_at": now,
        "created_at": now,
    }


def match(t: FailedTable, keys: list[str], rows: Sequence[Any]) -> list[tuple[str, Any]]:
    """Each requested key with its row (None when gone); a row named twice counts once."""
    by_key: dict[str, Any] = {}
    for row in rows:
        for key in t.keys_of(row):
            by_key[key] = row
    seen: set[int] = set()
    matched: list[tuple[str, Any]] = []
    for key in keys:
        row = by_key.get(key)
        if row is not None and row.id in seen:
            row = None
        if row is not None:
            seen.add(row.id)
        matched.append((key, row))
    return matched


def unknown_connection(connection: str | None) -> str:
    return (
        f"connection {connection!r} is neither a database nor a Redis queue connection; not "
        "retried (list it in database_connections or redis_connections)"
    )


def no_redis_url(connection: str | None) -> str:
    return f"connection {connection!r} is a Redis queue but redis_url is not set; not retried"


def is_redis_error(exc: BaseException) -> bool:
    try:
        import redis
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, redis.RedisError)

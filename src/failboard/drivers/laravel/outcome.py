"""What one retry batch found and decided (:func:`plan`), and the small pure helpers of the
executor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from failboard.drivers.base import JobOutcome, ResultTally
from failboard.drivers.laravel.horizon import HorizonJob
from failboard.drivers.laravel.options import Options
from failboard.drivers.laravel.payload import PayloadError, reset_for_retry
from failboard.drivers.laravel.store import FailedTable

__all__ = [
    "Outcome",
    "add_horizon_only",
    "is_redis_error",
    "jobs_row",
    "match",
    "no_redis_url",
    "plan",
    "unknown_connection",
]


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
        # Each requested key's answer, for the grouped face (the tally above is per batch).
        self.each: dict[str, JobOutcome] = {}

    def fail(self, job_id: str, reason: str, key: str | None = None) -> None:
        self.failures.append((job_id, reason))
        if key is not None:
            self.each[key] = JobOutcome("failed", reason, None if key == job_id else job_id)

    def apply(self, tally: ResultTally) -> None:
        tally.succeeded += len(self.pushed) + self.horizon_only
        tally.missing += self.missing - self.horizon_only
        for job_id, reason in self.failures:
            tally.fail(job_id, reason)


def plan(
    options: Options, t: FailedTable, keys: list[str], rows: Sequence[Any], now: int
) -> Outcome:
    """What to do with each requested job of a batch: push it where its ``connection`` says,
    or say why not."""
    outcome = Outcome()
    for key, row in match(t, keys, rows):
        if row is None:
            outcome.missing += 1
            outcome.missing_keys.append(key)
            outcome.each[key] = JobOutcome("missing")
            continue
        handle = t.handle(row)
        if row.connection in options.database_connections:
            kind = "database"
        elif row.connection in options.redis_connections:
            if options.redis_url is None:
                outcome.fail(handle, no_redis_url(row.connection), key)
                continue
            kind = "horizon" if options.horizon and t.has_uuid and row.uuid else "redis"
        else:
            outcome.fail(handle, unknown_connection(row.connection), key)
            continue
        try:
            payload = reset_for_retry(row.payload, now)
        except PayloadError as exc:
            outcome.fail(handle, f"{exc}; not retried", key)
            continue
        outcome.pushed.append(row.id)
        outcome.each[key] = JobOutcome("succeeded")
        if kind == "database":
            outcome.pushes.append(jobs_row(row, payload, now))
        elif kind == "redis":
            outcome.redis.append((row.queue, payload))
        else:
            outcome.horizon.append(HorizonJob(row.uuid, row.connection, row.queue, row.payload))
    return outcome


def add_horizon_only(
    options: Options, outcome: Outcome, records: dict[str, dict[str, str | None]]
) -> None:
    """Jobs named by id that the table does not have but Horizon has as failed (Horizon keeps
    its own records; ``horizon_source = "horizon"`` lists them): retry them too."""
    for key in outcome.missing_keys:
        record = records.get(key)
        # Already retried (Horizon keeps the original, failed, with retried_by set): its
        # retry is a job of its own. The table row of a job we just retried is gone too,
        # so a second agent lands here and must count it missing, not push it again.
        if record is None or record.get("status") != "failed" or record.get("retried_by"):
            continue
        if not record.get("queue"):
            continue
        if record.get("connection") not in options.redis_connections:
            continue
        outcome.horizon.append(
            HorizonJob(
                key,
                record.get("connection") or "redis",
                record.get("queue") or "default",
                None,
            )
        )


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

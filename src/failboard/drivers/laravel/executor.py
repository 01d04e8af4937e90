"""Acts on a Laravel ``failed_jobs`` table the way ``php artisan`` would, without PHP.

- ``retry``        = ``queue:retry <uuid>...`` for the *database* queue: push the payload (same
  uuid, attempts reset) into ``jobs``, then delete the failed row — in one transaction per
  batch, under row locks, so two agents never push the same job twice.
- ``delete``       = ``queue:forget <uuid>``.
- ``retry_queue``  = ``queue:retry --queue=Q`` (only Q; every queue when None), limited to jobs that
  failed at or before the moment the operator asked, walked by id in batches (Laravel loads
  every id at once: laravel/framework #33874, #49185).
- ``prune``        = ``queue:prune-failed``: delete what failed before a moment, in batches
  of 1000.

Not built yet (CONTRACT §2 accepts the options): Redis/Horizon queues and ``executor =
"artisan"``. The jobs they concern are answered as *failed* with a reason saying so, untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from failboard.db import create_engine, immediate
from failboard.drivers import sqltable
from failboard.drivers.base import Progress, ResultTally, no_progress
from failboard.drivers.laravel.options import CAPABILITIES, Options
from failboard.drivers.laravel.payload import PayloadError, reset_for_retry
from failboard.drivers.laravel.schema import queue_jobs_table
from failboard.drivers.laravel.store import FailedJobsStore, FailedTable
from failboard.exceptions import StoreError
from failboard.models import ActionResult

__all__ = ["LaravelExecutor"]

ATTEMPTS = sqltable.ATTEMPTS


class _Raced(Exception):
    """Another agent changed the rows between our read and our delete: redo the batch."""


class LaravelExecutor:
    """The Executor (see :class:`failboard.drivers.base.Executor`) of one Laravel application."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        project: str,
        url: str,
        options: Options | None = None,
        *,
        batch_size: int = 1_000,
        engine: Engine | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.project = project
        self.options = options or Options()
        self.batch_size = max(1, batch_size)
        self._clock = clock
        if engine is None:
            engine = create_engine(url, timeout=30.0, what=f"project {project}")
        self._store = FailedJobsStore(project, url, self.options, engine)
        self._jobs = queue_jobs_table(self.options.jobs_table)
        self._jobs_checked = False

    # -- Executor --------------------------------------------------------------------------

    def retry(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Push the jobs back onto their original queue, then remove their failure records."""
        keys = _unique(job_ids)
        tally = ResultTally()
        if self._refused(tally, keys):
            return tally.result()
        for batch in _chunks(keys, self.batch_size):
            self._retry_batch(tally, batch, ())
            progress(tally.done, len(keys))
        return tally.result()

    def delete(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Forget the jobs (``queue:forget``); ids already gone count as missing."""
        keys = _unique(job_ids)
        tally = ResultTally()
        if self._refused(tally, keys, horizon=True):
            return tally.result()
        for batch in _chunks(keys, self.batch_size):
            self._delete_batch(tally, batch)
            progress(tally.done, len(keys))
        return tally.result()

    def retry_queue(
        self, queue: str | None, failed_before: datetime, progress: Progress = no_progress
    ) -> ActionResult:
        """Retry every job of ``queue`` (every queue when None) that failed at or before
        ``failed_before``; later failures — including the retried jobs failing again — are not
        touched. Walks the table by id, one batch in memory at a time."""
        store = self._store
        tally = ResultTally()
        with store.errors():
            t = store.table()
            scope = [t.c.failed_at <= store.to_store(failed_before)]
            if queue is not None:
                scope.append(t.c.queue == queue)
            total = self._count(t, scope)
        if self._refused(tally, None, count=total):
            return tally.result()
        for batch in self._walk(t, scope):
            self._retry_batch(tally, [str(i) for i in batch], scope)
            progress(tally.done, total)
        return tally.result()

    def prune(self, older_than: datetime, progress: Progress = no_progress) -> ActionResult:
        """Delete the failure records of jobs that failed before ``older_than``."""
        store = self._store
        tally = ResultTally()
        with store.errors():
            t = store.table()
            scope = [t.c.failed_at < store.to_store(older_than)]
            total = self._count(t, scope)
        if self._refused(tally, None, count=total):
            return tally.result()
        for batch in self._walk(t, scope):
            with store.errors(), immediate(store.engine) as connection:
                # Ids first, then delete by ids: MySQL forbids LIMIT in an IN-subquery.
                gone = connection.execute(
                    sa.delete(t.table).where(t.c.id.in_(batch), *scope)
                ).rowcount
            tally.succeeded += gone
            tally.missing += len(batch) - gone
            progress(tally.done, total)
        return tally.result()

    def close(self) -> None:
        self._store.close()

    # -- batches ---------------------------------------------------------------------------

    def _retry_batch(
        self, tally: ResultTally, keys: list[str], scope: Sequence[sa.ColumnElement[bool]]
    ) -> None:
        store = self._store
        t = store.table()
        c = t.c
        for attempt in range(ATTEMPTS):
            try:
                with store.errors(), immediate(store.engine) as connection:
                    columns = [c.id, c.connection, c.queue, c.payload]
                    if t.has_uuid:
                        columns.append(c.uuid)
                    rows = connection.execute(
                        sa.select(*columns)
                        .where(t.key_filter(keys), *scope)
                        .order_by(c.id)
                        .with_for_update()
                    ).all()
                    outcome = self._plan(t, keys, rows, int(self._clock()))
                    if outcome.pushes:
                        # Enqueue first, remove the failure record second; one commit for both.
                        self._check_jobs_table(connection)
                        connection.execute(self._jobs.insert(), outcome.pushes)
                        gone = connection.execute(
                            sa.delete(t.table).where(c.id.in_(outcome.pushed))
                        ).rowcount
                        if gone != len(outcome.pushed):
                            raise _Raced  # rolls back the pushes with it
            except (_Raced, StoreError) as exc:
                if attempt + 1 < ATTEMPTS and _transient(exc):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                if isinstance(exc, _Raced):
                    raise _gave_up(store.what) from None
                raise
            outcome.apply(tally)
            return

    def _plan(self, t: FailedTable, keys: list[str], rows: Sequence[Any], now: int) -> _Outcome:
        """What to do with each requested job: push it, or say why not."""
        outcome = _Outcome()
        for _key, row in _match(t, keys, rows):
            if row is None:
                outcome.missing += 1
            elif row.connection not in self.options.database_connections:
                outcome.fail(t.handle(row), _not_database(row.connection))
            else:
                try:
                    payload = reset_for_retry(row.payload, now)
                except PayloadError as exc:
                    outcome.fail(t.handle(row), f"{exc}; not retried")
                    continue
                outcome.pushed.append(row.id)
                outcome.pushes.append(_jobs_row(row, payload, now))
        return outcome

    def _delete_batch(self, tally: ResultTally, keys: list[str]) -> None:
        store = self._store
        t = store.table()
        c = t.c
        for attempt in range(ATTEMPTS):
            try:
                with store.errors(), immediate(store.engine) as connection:
                    columns = [c.id, c.uuid] if t.has_uuid else [c.id]
                    rows = connection.execute(
                        sa.select(*columns)
                        .where(t.key_filter(keys))
                        .order_by(c.id)
                        .with_for_update()
                    ).all()
                    found = [row for _, row in _match(t, keys, rows) if row is not None]
                    ids = [row.id for row in found]
                    if ids:
                        gone = connection.execute(sa.delete(t.table).where(c.id.in_(ids))).rowcount
                        if gone != len(ids):
                            raise _Raced
            except (_Raced, StoreError) as exc:
                if attempt + 1 < ATTEMPTS and _transient(exc):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                if isinstance(exc, _Raced):
                    raise _gave_up(store.what) from None
                raise
            tally.succeeded += len(ids)
            tally.missing += len(keys) - len(ids)
            return

    # -- helpers ---------------------------------------------------------------------------

    def _refused(
        self,
        tally: ResultTally,
        keys: list[str] | None,
        *,
        count: int = 0,
        horizon: bool = False,
    ) -> bool:
        """Answer every job as failed when this configuration asks for what is not built."""
        reason = None
        if self.options.executor == "artisan":
            reason = (
                'executor = "artisan" is not built yet; nothing was done (use the default '
                'executor = "native")'
            )
        elif horizon and self.options.horizon:
            reason = (
                "horizon = true: removing jobs from Horizon's Redis store is not built yet; "
                "nothing was done"
            )
        if reason is None:
            return False
        if keys is None:
            if count:
                tally.fail("*", reason, count=count)
        else:
            for key in keys:
                tally.fail(key, reason)
        return True

    def _count(self, t: FailedTable, scope: list[sa.ColumnElement[bool]]) -> int:
        with self._store.engine.connect() as connection:
            value = connection.execute(
                sa.select(sa.func.count()).select_from(t.table).where(*scope)
            ).scalar()
        return int(value or 0)

    def _walk(self, t: FailedTable, scope: list[sa.ColumnElement[bool]]) -> Iterator[list[int]]:
        """Batches of ids in the scope, by ascending id: bounded memory at any table size."""
        store = self._store
        return sqltable.walk_ids(
            store.engine, t.table, t.c.id, scope, self.batch_size, errors=store.errors
        )

    def _check_jobs_table(self, connection: Connection) -> None:
        if self._jobs_checked:
            return
        schema, _, name = self.options.jobs_table.rpartition(".")
        if not sa.inspect(connection).has_table(name, schema=schema or None):
            raise StoreError(
                f"{self._store.what}: table {self.options.jobs_table} does not exist; set "
                "jobs_table to the database queue's table (php artisan queue:table makes it)"
            )
        self._jobs_checked = True


class _Outcome:
    """What one batch did; applied to the tally only once its transaction committed."""

    def __init__(self) -> None:
        self.pushed: list[int] = []  # failed_jobs ids to delete
        self.pushes: list[dict[str, Any]] = []  # jobs rows to insert
        self.missing = 0
        self.failures: list[tuple[str, str]] = []

    def fail(self, job_id: str, reason: str) -> None:
        self.failures.append((job_id, reason))

    def apply(self, tally: ResultTally) -> None:
        tally.succeeded += len(self.pushed)
        tally.missing += self.missing
        for job_id, reason in self.failures:
            tally.fail(job_id, reason)


def _jobs_row(row: Any, payload: str, now: int) -> dict[str, Any]:
    # DatabaseQueue::buildDatabaseRecord: the ORIGINAL queue, attempts 0, available now.
    return {
        "queue": row.queue,
        "payload": payload,
        "attempts": 0,
        "reserved_at": None,
        "available_at": now,
        "created_at": now,
    }


def _match(t: FailedTable, keys: list[str], rows: Sequence[Any]) -> list[tuple[str, Any]]:
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


def _not_database(connection: str | None) -> str:
    return (
        f"connection {connection!r} is not a database queue connection; Redis/Horizon retry is "
        "not built yet (database_connections lists the database ones)"
    )


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, _Raced) or sqltable.transient(exc)


def _gave_up(what: str) -> StoreError:
    return StoreError(
        f"{what}: other agents kept changing these jobs; gave up after {ATTEMPTS} tries"
    )


_unique = sqltable.unique
_chunks = sqltable.chunks

"""Acts on a Laravel ``failed_jobs`` table the way ``php artisan`` would, without PHP.

- ``retry``        = ``queue:retry <uuid>...``: each job goes back onto its *original*
  connection and queue, chosen by its ``connection`` column — an INSERT into ``jobs`` for the
  database queue, ``RedisQueue::pushRaw`` for the Redis queue, Horizon's own retry when
  ``horizon = true`` (see :mod:`.horizon`) — with ``attempts`` reset; then the failed row goes.
- ``delete``       = ``queue:forget <uuid>``, or ``horizon:forget <uuid>`` with Horizon.
- ``retry_queue``  = ``queue:retry --queue=Q`` (only Q; every queue when None), limited to jobs that
  failed at or before the moment the operator asked, pushed newest id first as Laravel does,
  walked in batches (Laravel loads every id at once: laravel/framework #33874, #49185).
- ``prune``        = ``queue:prune-failed``: delete what failed before a moment, in batches
  of 1000.

Each retry batch is one transaction on the project's database: lock the failed rows, insert the
database-queue jobs, delete the rows, push the Redis jobs (one MULTI/EXEC), commit. Two agents
naming the same job serialise on the row lock, and the second finds it gone. The only window is
a commit that fails *after* the Redis push: the job is then on its queue and still listed as
failed (at least once, never lost); the batch is not redone by itself, and the action's error
says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from failboard.db import create_engine, immediate
from failboard.drivers import sqltable
from failboard.drivers.base import JobOutcome, Progress, ResultTally, no_progress
from failboard.drivers.laravel.options import CAPABILITIES, Options
from failboard.drivers.laravel.outcome import Outcome, add_horizon_only, match, plan
from failboard.drivers.laravel.redis_clients import RedisClients
from failboard.drivers.laravel.schema import queue_jobs_table
from failboard.drivers.laravel.store import FailedJobsStore, FailedTable
from failboard.exceptions import StoreError, Unsupported
from failboard.models import ActionResult

__all__ = ["LaravelExecutor"]

ATTEMPTS = sqltable.ATTEMPTS


class _Raced(Exception):
    """Another agent changed the rows between our read and our delete: redo the batch."""


class _PushedNotCommitted(StoreError):
    """The batch's Redis jobs went out but its transaction did not commit."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class LaravelExecutor:
    """The Executor (see :class:`failboard.drivers.base.Executor`) of one Laravel application,
    and its grouped face (:class:`failboard.drivers.base.GroupedExecutor`) unless ``horizon``
    (Horizon's retry answers for a batch, not per job)."""

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
        self.group_size = self.batch_size
        self.capabilities = replace(CAPABILITIES, grouped=not self.options.horizon)
        self._clock = clock
        if engine is None:
            engine = create_engine(url, timeout=30.0, what=f"project {project}")
        self._store = FailedJobsStore(project, url, self.options, engine)
        self._jobs = queue_jobs_table(self.options.jobs_table)
        self._jobs_checked = False
        self._redis = RedisClients(self.options, self._store.what, clock=clock)

    # -- Executor --------------------------------------------------------------------------

    def retry(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Push the jobs back onto their original queue, then remove their failure records."""
        keys = _unique(job_ids)
        tally = ResultTally()
        if self._refused(tally, keys):
            return tally.result()
        for batch in _chunks(keys, self.batch_size):
            self._retry_batch(batch, ()).apply(tally)
            progress(tally.done, len(keys))
        return tally.result()

    def delete(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Forget the jobs (``queue:forget``); ids already gone count as missing."""
        keys = _unique(job_ids)
        tally = ResultTally()
        if self._refused(tally, keys):
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
        touched. Walks the table by descending id (``queue:retry --queue``'s order), one batch in
        memory at a time."""
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
        for batch in store.newest_first(scope, self.batch_size):
            self._retry_batch([str(i) for i in batch], scope).apply(tally)
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
        self._redis.close()

    # -- GroupedExecutor -------------------------------------------------------------------

    def retry_each(self, job_ids: Sequence[str]) -> dict[str, JobOutcome]:
        """:meth:`retry`'s work for the jobs of several actions, answered per job: one
        transaction per ``batch_size`` ids (the agent passes at most one batch)."""
        self._no_horizon()
        answers: dict[str, JobOutcome] = {}
        for batch in _chunks(_unique(job_ids), self.batch_size):
            try:
                outcome = self._retry_batch(batch, ())
            except _PushedNotCommitted as exc:
                # Not raised: running the actions again alone would push these jobs twice.
                outcome = exc.outcome
                for key, answer in list(outcome.each.items()):
                    if answer.status == "succeeded":
                        outcome.each[key] = JobOutcome("failed", exc.message)
            answers.update(outcome.each)
        return answers

    def delete_each(self, job_ids: Sequence[str]) -> dict[str, JobOutcome]:
        """:meth:`delete`'s work for the jobs of several actions, answered per job."""
        self._no_horizon()
        answers: dict[str, JobOutcome] = {}
        for batch in _chunks(_unique(job_ids), self.batch_size):
            found, _ = self._delete_rows(batch)
            for key, row in found:
                answers[key] = JobOutcome("succeeded" if row is not None else "missing")
        return answers

    # -- batches ---------------------------------------------------------------------------

    def _retry_batch(self, keys: list[str], scope: Sequence[sa.ColumnElement[bool]]) -> Outcome:
        """Retry one batch; what it did, once committed (the caller counts it)."""
        store = self._store
        t = store.table()
        c = t.c
        for attempt in range(ATTEMPTS):
            pushed_to_redis = False
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
                    outcome = plan(self.options, t, keys, rows, int(self._clock()))
                    self._horizon_only(outcome)
                    if outcome.pushed or outcome.horizon:
                        if outcome.pushes:
                            self._check_jobs_table(connection)
                            connection.execute(self._jobs.insert(), outcome.pushes)
                        gone = connection.execute(
                            sa.delete(t.table).where(c.id.in_(outcome.pushed))
                        ).rowcount
                        if outcome.pushed and gone != len(outcome.pushed):
                            raise _Raced  # rolls back the pushes with it
                        # Redis last, once every SQL statement that could fail has run: a Redis
                        # error rolls the whole batch back with nothing pushed (MULTI/EXEC).
                        pushed_to_redis = self._push_redis(outcome)
            except (_Raced, StoreError) as exc:
                if pushed_to_redis:
                    raise _PushedNotCommitted(
                        f"{store.what}: the jobs were pushed to Redis but removing their "
                        f"failed_jobs rows did not commit ({exc}); they may run again if "
                        "retried again",
                        outcome,
                    ) from exc
                if attempt + 1 < ATTEMPTS and _transient(exc):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                if isinstance(exc, _Raced):
                    raise _gave_up(store.what) from None
                raise
            return outcome
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _push_redis(self, outcome: Outcome) -> bool:
        if not outcome.redis and not outcome.horizon:
            return False
        with self._redis.errors():
            queue = self._redis.queue()
            if outcome.horizon:
                # Jobs only Horizon had count once their retry really went out.
                outcome.horizon_only = self._redis.horizon().retry(queue, outcome.horizon)
            queue.push(outcome.redis)
        return True

    def _horizon_only(self, outcome: Outcome) -> None:
        """Add the requested jobs only Horizon has (see :func:`.add_horizon_only`)."""
        if not self.options.horizon or not outcome.missing_keys:
            return
        with self._redis.errors():
            records = self._redis.horizon().records(outcome.missing_keys)
        add_horizon_only(self.options, outcome, records)

    def _delete_batch(self, tally: ResultTally, keys: list[str]) -> None:
        found, horizon_only = self._delete_rows(keys)
        deleted = sum(1 for _, row in found if row is not None)
        tally.succeeded += deleted + horizon_only
        tally.missing += len(keys) - deleted - horizon_only

    def _delete_rows(self, keys: list[str]) -> tuple[list[tuple[str, Any]], int]:
        """Delete one batch: each key with its deleted row (None when gone), and how many
        jobs only Horizon had (forgotten there)."""
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
                    matched = match(t, keys, rows)
                    found = [row for _, row in matched if row is not None]
                    ids = [row.id for row in found]
                    if ids:
                        gone = connection.execute(sa.delete(t.table).where(c.id.in_(ids))).rowcount
                        if gone != len(ids):
                            raise _Raced
                    horizon_only = self._forget_horizon(t, keys, found)
            except (_Raced, StoreError) as exc:
                if attempt + 1 < ATTEMPTS and _transient(exc):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                if isinstance(exc, _Raced):
                    raise _gave_up(store.what) from None
                raise
            return matched, horizon_only
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _forget_horizon(self, t: FailedTable, keys: list[str], found: list[Any]) -> int:
        """``horizon:forget``'s Redis half for every requested uuid (before the rows' delete
        commits: a Redis error rolls the delete back). Returns how many jobs only Horizon had."""
        if not self.options.horizon:
            return 0
        in_table: set[str] = set()
        for row in found:
            in_table.update(t.keys_of(row))
        uuids = {str(row.uuid) for row in found if t.has_uuid and row.uuid}
        uuids.update(key for key in keys if key not in in_table and not key.isdigit())
        if not uuids:
            return 0
        ordered = sorted(uuids)
        with self._redis.errors():
            forgotten = self._redis.horizon().forget(ordered)
        return sum(
            1
            for job_id, done in zip(ordered, forgotten, strict=True)
            if done and job_id not in in_table
        )

    # -- helpers ---------------------------------------------------------------------------

    def _no_horizon(self) -> None:
        # Horizon's retry counts a batch, not each job: no per-job answers (the agent, told by
        # capabilities.grouped, runs such actions one by one).
        if self.options.horizon:
            raise Unsupported("grouped actions are not available with horizon = true")

    def _refused(self, tally: ResultTally, keys: list[str] | None, *, count: int = 0) -> bool:
        """Answer every job as failed when this configuration cannot work at all."""
        reason = None
        if self.options.horizon and self.options.horizon_redis_url is None:
            reason = "horizon = true needs redis_url (or horizon_url); nothing was done"
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


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, _Raced) or sqltable.transient(exc)


def _gave_up(what: str) -> StoreError:
    return StoreError(
        f"{what}: other agents kept changing these jobs; gave up after {ATTEMPTS} tries"
    )


_unique = sqltable.unique
_chunks = sqltable.chunks

"""The Executor of every recorder-based driver: acts on one project's rows of the failures table.

Retrying a job re-sends it through the project's own app (an engine's :class:`Resender`), then
deletes its failure rows: send first, delete second, one transaction per batch holding the rows'
locks while it sends, so two agents never send the same job twice. A job whose row cannot be
re-sent faithfully (redacted or lossy arguments, another engine's row) is answered as failed
and left in place. When the broker is unreachable the batch stops, the rows already sent are
deleted, and the action fails with that error; run again, those count as missing.

A re-sender may buffer its sends and deliver them together (Celery on Redis: one pipeline per
batch instead of a round trip per task): a job counts as sent, and its rows are deleted, only
once the re-sender's ``flush`` returned; a flush that fails keeps every row of its batch.

Lineage: each re-sent job's new id is recorded in the action result's ``details["lineage"]``
(original id → new id, the first :data:`MAX_LINEAGE` of them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from failboard.db import create_engine, immediate
from failboard.drivers import sqltable
from failboard.drivers.base import JobOutcome, Progress, ResultTally, no_progress
from failboard.exceptions import StoreError, StoreUnreachable
from failboard.failures.options import CAPABILITIES
from failboard.failures.reader import decode_json
from failboard.failures.schema import DEFAULT_TABLE
from failboard.failures.store import FailuresStore, to_store
from failboard.models import ActionResult

__all__ = [
    "BrokerUnreachable",
    "BufferingResender",
    "FailuresExecutor",
    "Resender",
    "StoredFailure",
]

MAX_LINEAGE = 1_000
"""Original → new id pairs kept in one action's result (the re-sent messages carry the rest)."""


class BrokerUnreachable(StoreUnreachable):
    """The project's broker could not be reached; nothing more is sent in this action."""


@dataclass(frozen=True, slots=True)
class StoredFailure:
    """A failure row as a re-sender needs it; ``args`` and ``kwargs`` are the stored JSON text."""

    id: int
    engine: str
    job_id: str
    name: str | None
    queue: str | None
    args: str | None
    kwargs: str | None
    options: dict[str, Any]
    attempts: int | None


class Resender(Protocol):
    """Puts a recorded job back on its queue through the project's own app (the agent side)."""

    engine: str

    def send(self, failure: StoredFailure) -> str:
        """Enqueue the job again; return its new job id. Raise :class:`BrokerUnreachable` when
        the broker cannot be reached (the action stops); any other error fails this job only."""
        ...

    def close(self) -> None: ...


class BufferingResender(Resender, Protocol):
    """A :class:`Resender` whose ``send`` may only buffer the job (its new id is known at once)."""

    def flush(self) -> None:
        """Deliver every job buffered since the last flush. Raise :class:`BrokerUnreachable`
        when they may not all have been delivered, or when buffered jobs were dropped since
        (a ``send`` that raised it): none of them count as sent then."""
        ...


class FailuresExecutor:
    """The Executor (see :class:`failboard.drivers.base.Executor`) of a recorder-based project,
    and its grouped face (:class:`failboard.drivers.base.GroupedExecutor`).

    ``resender`` makes the engine's :class:`Resender` on first use (a retry), so that delete and
    prune work without importing the project's app."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        project: str,
        url: str,
        table: str = DEFAULT_TABLE,
        *,
        resender: Callable[[], Resender],
        batch_size: int = 1_000,
        engine: Engine | None = None,
    ) -> None:
        self.project = project
        self.batch_size = max(1, batch_size)
        self.group_size = self.batch_size
        self.capabilities = replace(CAPABILITIES, grouped=True)
        if engine is None:
            engine = create_engine(url, timeout=30.0, what=f"project {project}")
        self._store = FailuresStore(project, url, table, engine)
        self._make_resender = resender
        self._resender: Resender | None = None

    # -- Executor --------------------------------------------------------------------------

    def retry(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Re-send the jobs through the project's app, then remove their failure rows."""
        keys = sqltable.unique(job_ids)
        run = _Run()
        c = self._store.c
        for batch in sqltable.chunks(keys, self.batch_size):
            self._retry_batch(run, batch, [c.job_id.in_(batch)])
            progress(run.tally.done, len(keys))
        return run.result()

    def delete(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Forget the jobs; ids already gone count as missing."""
        keys = sqltable.unique(job_ids)
        tally = ResultTally()
        for batch in sqltable.chunks(keys, self.batch_size):
            found = self._delete_batch(batch)
            tally.succeeded += len(found)
            tally.missing += len(batch) - len(found)
            progress(tally.done, len(keys))
        return tally.result()

    def retry_queue(
        self, queue: str | None, failed_before: datetime, progress: Progress = no_progress
    ) -> ActionResult:
        """Retry every job of ``queue`` (every queue when None) that failed at or before
        ``failed_before``; later failures (the retried jobs failing again among them) are not
        touched. Walks the rows by id, one batch in memory at a time."""
        store = self._store
        c = store.c
        scope = [store.mine, c.failed_at <= to_store(failed_before)]
        if queue is not None:
            scope.append(c.queue == queue)
        total = self._count(scope)
        run = _Run()
        walk = sqltable.walk_ids(
            store.engine, store.table, c.id, scope, self.batch_size, errors=store.errors
        )
        for ids in walk:
            self._retry_batch(run, None, [c.id.in_(ids), *scope])
            progress(run.tally.done, total)
        return run.result()

    def prune(self, older_than: datetime, progress: Progress = no_progress) -> ActionResult:
        """Delete the failure rows of jobs that failed before ``older_than``."""
        store = self._store
        c = store.c
        scope = [store.mine, c.failed_at < to_store(older_than)]
        total = self._count(scope)
        tally = ResultTally()
        walk = sqltable.walk_ids(
            store.engine, store.table, c.id, scope, self.batch_size, errors=store.errors
        )
        for ids in walk:
            with store.errors(), immediate(store.engine) as connection:
                gone = connection.execute(
                    sa.delete(store.table).where(c.id.in_(ids), *scope)
                ).rowcount
            tally.succeeded += gone
            tally.missing += len(ids) - gone
            progress(tally.done, total)
        return tally.result()

    def retry_each(self, job_ids: Sequence[str]) -> dict[str, JobOutcome]:
        """:meth:`retry`'s work for the jobs of several actions, answered per job. A broker that
        cannot be reached raises after the batch's sent rows are deleted (a rerun counts them
        missing), as :meth:`retry` does."""
        c = self._store.c
        answers: dict[str, JobOutcome] = {}
        for batch in sqltable.chunks(sqltable.unique(job_ids), self.batch_size):
            outcome = self._retry_batch(_Run(), batch, [c.job_id.in_(batch)])
            failed = dict(outcome.failures)
            sent = dict(outcome.lineage)
            for key in batch:
                if key in sent:
                    answers[key] = JobOutcome("succeeded", new_id=sent[key])
                elif key in failed:
                    answers[key] = JobOutcome("failed", failed[key])
                else:
                    answers[key] = JobOutcome("missing")
        return answers

    def delete_each(self, job_ids: Sequence[str]) -> dict[str, JobOutcome]:
        """:meth:`delete`'s work for the jobs of several actions, answered per job."""
        answers: dict[str, JobOutcome] = {}
        for batch in sqltable.chunks(sqltable.unique(job_ids), self.batch_size):
            found = self._delete_batch(batch)
            for key in batch:
                answers[key] = JobOutcome("succeeded" if key in found else "missing")
        return answers

    def close(self) -> None:
        if self._resender is not None:
            self._resender.close()
            self._resender = None
        self._store.close()

    # -- batches ---------------------------------------------------------------------------

    def _delete_batch(self, keys: list[str]) -> set[str]:
        """Delete the rows of one batch of job ids; the ids that had rows."""
        store = self._store
        c = store.c
        with store.errors(), immediate(store.engine) as connection:
            rows = connection.execute(
                sa.select(c.id, c.job_id).where(store.mine, c.job_id.in_(keys))
            ).all()
            if rows:
                connection.execute(sa.delete(store.table).where(c.id.in_([row.id for row in rows])))
        return {str(row.job_id) for row in rows}

    def _retry_batch(
        self, run: _Run, keys: list[str] | None, where: Sequence[sa.ColumnElement[bool]]
    ) -> _Outcome:
        """Send the jobs of one batch, then delete the rows sent, in one transaction; what it
        did (already counted in ``run``).

        ``keys`` are the job ids asked for (None when the batch is a walk over row ids, where a
        row gone meanwhile is simply not there)."""
        store = self._store
        c = store.c
        stopped: BrokerUnreachable | None = None
        for attempt in range(sqltable.ATTEMPTS):
            sent_rows: list[int] = []
            try:
                with store.errors(), immediate(store.engine) as connection:
                    rows = connection.execute(
                        sa.select(
                            c.id,
                            c.engine,
                            c.job_id,
                            c.name,
                            c.queue,
                            c.args,
                            c.kwargs,
                            c.options,
                            c.attempts,
                        )
                        .where(store.mine, *where)
                        .order_by(c.failed_at.desc(), c.id.desc())
                        .with_for_update()
                    ).all()
                    outcome, stopped = self._send(rows, keys)
                    sent_rows = outcome.deleted
                    for ids in sqltable.chunks(sent_rows, 500):
                        connection.execute(sa.delete(store.table).where(c.id.in_(ids)))
            except StoreError as exc:
                # Once anything was sent, doing the batch again would send it twice.
                if not sent_rows and attempt + 1 < sqltable.ATTEMPTS and sqltable.transient(exc):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise
            outcome.apply(run)
            if stopped is not None:
                raise stopped
            return outcome
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send(
        self, rows: Sequence[Any], keys: list[str] | None
    ) -> tuple[_Outcome, BrokerUnreachable | None]:
        # Rows come newest first: the newest failure of a job is the one re-sent, and every row
        # of that job read here goes with it.
        by_job: dict[str, list[Any]] = {}
        for row in rows:
            by_job.setdefault(str(row.job_id), []).append(row)
        outcome = _Outcome()
        wanted = keys if keys is not None else list(by_job)
        resender = self._resender_now()
        for index, key in enumerate(wanted):
            found = by_job.get(key)
            if not found:
                outcome.missing += 1
                continue
            stored = _stored(found[0])
            reason = self._refusal(stored)
            if reason is not None:
                outcome.failures.append((key, reason))
                continue
            try:
                new_id = resender.send(stored)
            except BrokerUnreachable as exc:
                outcome.failures.extend((k, exc.message) for k in wanted[index:] if k in by_job)
                outcome.missing += sum(1 for k in wanted[index:] if k not in by_job)
                # What went out before the broker failed is settled by the flush as usual.
                return outcome, _flushed(resender, outcome) or exc
            except Exception as exc:
                outcome.failures.append((key, f"{type(exc).__name__}: {exc}"))
                continue
            outcome.pending.append((key, new_id, [r.id for r in found]))
        return outcome, _flushed(resender, outcome)

    def _refusal(self, row: StoredFailure) -> str | None:
        resender = self._resender_now()
        if row.engine != resender.engine:
            return f"recorded by {row.engine}, not {resender.engine}: not re-sent"
        options = row.options
        if options:
            if options.get("redacted"):
                paths = ", ".join(str(p) for p in options["redacted"])
                return (
                    f"arguments were redacted ({paths}); re-sending would pass the placeholder, "
                    "so it is not re-sent (delete it, or re-send it from the application)"
                )
            if options.get("lossy"):
                return "arguments were not JSON and were recorded as a representation; not re-sent"
        return None

    def _resender_now(self) -> Resender:
        if self._resender is None:
            self._resender = self._make_resender()
        return self._resender

    def _count(self, scope: Sequence[sa.ColumnElement[bool]]) -> int:
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            value = connection.execute(
                sa.select(sa.func.count()).select_from(store.table).where(*scope)
            ).scalar()
        return int(value or 0)


def _flushed(resender: Resender, outcome: _Outcome) -> BrokerUnreachable | None:
    """Flush a buffering re-sender, then count the batch's sends as sent (their rows to be
    deleted) or, when the flush failed, as failed (their rows kept); the flush's error."""
    flush = getattr(resender, "flush", None)
    try:
        if flush is not None:
            flush()
    except BrokerUnreachable as exc:
        outcome.failures.extend((key, exc.message) for key, _, _ in outcome.pending)
        outcome.pending.clear()
        return exc
    for key, new_id, row_ids in outcome.pending:
        outcome.lineage.append((key, new_id))
        outcome.deleted.extend(row_ids)
    outcome.pending.clear()
    return None


def _stored(row: Any) -> StoredFailure:
    options = decode_json(row.options)
    return StoredFailure(
        id=int(row.id),
        engine=str(row.engine),
        job_id=str(row.job_id),
        name=row.name,
        queue=row.queue,
        args=row.args,
        kwargs=row.kwargs,
        options=options if isinstance(options, dict) else {},
        attempts=row.attempts,
    )


class _Outcome:
    """What one batch did; applied only once its transaction committed."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str, list[int]]] = []  # sent, not flushed: id, new, rows
        self.deleted: list[int] = []  # row ids sent and deleted
        self.lineage: list[tuple[str, str]] = []  # (original id, new id) per job sent
        self.missing = 0
        self.failures: list[tuple[str, str]] = []

    def apply(self, run: _Run) -> None:
        run.tally.succeeded += len(self.lineage)
        run.tally.missing += self.missing
        for job_id, reason in self.failures:
            run.tally.fail(job_id, reason)
        room = MAX_LINEAGE - len(run.lineage)
        for original, new in self.lineage[: max(0, room)]:
            run.lineage[original] = new
        run.sent += len(self.lineage)


class _Run:
    """The tally and the lineage of one action."""

    def __init__(self) -> None:
        self.tally = ResultTally()
        self.lineage: dict[str, str] = {}
        self.sent = 0

    def result(self) -> ActionResult:
        result = self.tally.result()
        if not self.lineage:
            return result
        details: dict[str, Any] = {"lineage": self.lineage}
        if self.sent > len(self.lineage):
            details["lineage_truncated"] = self.sent - len(self.lineage)
        return result.model_copy(update={"details": details})

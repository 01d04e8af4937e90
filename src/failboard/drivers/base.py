"""The two faces of a driver, as typed Protocols.

A **Reader** runs in the dashboard and only reads a project's failure store. An **Executor** runs
in the agent, inside the project, and changes the store (retry, delete, retry a queue, prune).
What a driver can do is declared in :class:`Capabilities`; the API refuses the rest with
:class:`~failboard.exceptions.Unsupported` and the UI hides it.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

from failboard.models import ActionKind, ActionResult, FailedJob, FailedJobDetail, JobQuery

__all__ = [
    "Capabilities",
    "Count",
    "Executor",
    "GroupedExecutor",
    "HistogramReader",
    "JobKey",
    "JobOutcome",
    "KeyedReader",
    "Progress",
    "Reader",
    "no_progress",
]

Progress = Callable[[int, int | None], None]
"""Called by executors after each batch with ``(done, total)``; ``total`` is None when unknown.

The agent's callback heartbeats the claim and raises
:class:`~failboard.exceptions.LeaseLost` when the claim was taken back: executors let it
propagate, so work stops at the next batch boundary."""


def no_progress(done: int, total: int | None) -> None:
    """A progress callback that ignores progress."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a driver can filter on in its store and which actions it can run."""

    filters: frozenset[str] = frozenset(
        {"queue", "connection", "name", "exception", "q", "failed_after", "failed_before"}
    )
    actions: frozenset[ActionKind] = frozenset(ActionKind)
    has_connections: bool = True
    grouped: bool = False
    """The executor is also a :class:`GroupedExecutor` (the agent then runs a pass's small
    ``retry``/``delete`` actions together)."""


@dataclass(frozen=True, slots=True)
class Count:
    """A count that stops at a cap, so that counting never blocks a page."""

    value: int
    capped: bool = False

    def __str__(self) -> str:
        return f"{self.value:,}+" if self.capped else f"{self.value:,}"


@runtime_checkable
class Reader(Protocol):
    """Reads one project's failed jobs. Every method pages or counts in the store itself."""

    project: str
    capabilities: Capabilities

    def list(self, query: JobQuery) -> list[FailedJob]:
        """Up to ``query.limit`` jobs in ``query.order``, resuming past ``query.seek``."""
        ...

    def get(self, job_id: str) -> FailedJobDetail | None:
        """One job in full, or None when it is gone."""
        ...

    def count(self, query: JobQuery, cap: int = 10_000) -> Count:
        """How many jobs match, counting no further than ``cap``."""
        ...

    def queues(self) -> builtins.list[str]:  # `list` here is the method above
        """The queue names that have failed jobs."""
        ...

    def ping(self) -> None:
        """Reach the store; raise StoreUnreachable / StoreError when it cannot be used."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class HistogramReader(Protocol):
    """An optional Reader face: failures per time bucket in one pass over the store.

    Not part of :class:`Reader` so that a driver without it still is one; the board falls back
    to one capped ``count`` per bucket for such a driver."""

    def histogram(self, start: datetime, step: timedelta, buckets: int) -> builtins.list[int]:
        """How many jobs failed in each of ``buckets`` half-open intervals
        ``[start + i*step, start + (i+1)*step)``."""
        ...


@dataclass(frozen=True, slots=True)
class JobKey:
    """Where a job sits in a project's order: what a merge across projects needs of it."""

    failed_at: datetime | None
    sort_key: str


@runtime_checkable
class KeyedReader(Protocol):
    """An optional Reader face: a page in two steps, so that a merge across projects parses only
    the rows it shows.

    Ten projects asked for a page of 50 each return 51 rows, and 460 of the 510 are thrown away
    after the merge; parsing a row (payload head, exception, fingerprint) is what a page costs.
    With this face the aggregator asks each project for the positions of its top rows, merges
    them, and fetches in full only the winners. A driver without it still is a Reader: the
    aggregator lists its rows whole."""

    def keys(self, query: JobQuery) -> builtins.list[JobKey | FailedJob]:
        """The positions of the jobs :meth:`Reader.list` would return for ``query``, in its
        order. A reader that had to read a row whole anyway (to filter on what its store cannot)
        may return the row itself: it is not fetched again."""
        ...

    def fetch(self, sort_keys: Sequence[str]) -> builtins.list[FailedJob]:
        """The list rows of the jobs whose ``sort_key`` is given, in any order; a job that is
        gone meanwhile is left out."""
        ...


@runtime_checkable
class Executor(Protocol):
    """Acts on one project's failed jobs, from inside the project (the agent).

    Every method works in bounded batches, calls ``progress`` after each one, counts jobs that
    are already gone as ``missing``, and never loads a whole store into memory.
    """

    project: str
    capabilities: Capabilities

    def retry(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Put the jobs back on their original queue, then remove their failure records."""
        ...

    def delete(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Forget the jobs."""
        ...

    def retry_queue(
        self, queue: str | None, failed_before: datetime, progress: Progress = no_progress
    ) -> ActionResult:
        """Retry every job of ``queue`` (every queue when None) that failed at or before
        ``failed_before``; later failures are not touched."""
        ...

    def prune(self, older_than: datetime, progress: Progress = no_progress) -> ActionResult:
        """Delete the failure records of jobs that failed before ``older_than``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What became of one job of a grouped call."""

    status: Literal["succeeded", "missing", "failed"]
    reason: str = ""
    """Why it failed (for ``failed``)."""
    name: str | None = None
    """How the error names the job when not by the id it was asked by (Laravel: the uuid of a
    row asked for by its numeric id), so that the error reads as the action alone would say."""
    new_id: str | None = None
    """The id the retried job was sent again under, when it got a new one (recorded as the
    action's ``details["lineage"]``, as :meth:`Executor.retry` does)."""


@runtime_checkable
class GroupedExecutor(Protocol):
    """An optional Executor face: the jobs of several small ``retry``/``delete`` actions in one
    call (one store transaction per ``group_size`` ids), answered per job so that the agent can
    split the tally back into each action's result.

    Not part of :class:`Executor`, so a driver without it still is one; a driver that has it
    says so with ``capabilities.grouped``. Each id is acted on once (ids come de-duplicated), a
    job that is gone is ``missing``, a job that cannot be acted on is ``failed`` with its reason
    — exactly what :meth:`Executor.retry` / :meth:`Executor.delete` would count for it.

    Raise only when what was done is durable and running the actions again one by one is
    safe (a job done counts ``missing`` then, and never runs twice): the agent falls back to
    that on any exception, so that a failure of one action's jobs fails that action alone. A
    job whose effect is uncertain (it may have gone out, its record is still there) is
    answered ``failed`` with the reason instead."""

    group_size: int
    """How many job ids one call takes at most (the agent groups no more)."""

    def retry_each(self, job_ids: Sequence[str]) -> dict[str, JobOutcome]:
        """Retry each job as :meth:`Executor.retry` would; one answer per distinct id."""
        ...

    def delete_each(self, job_ids: Sequence[str]) -> dict[str, JobOutcome]:
        """Delete each job as :meth:`Executor.delete` would; one answer per distinct id."""
        ...


@dataclass(slots=True)
class ResultTally:
    """Adds up per-job outcomes into an :class:`ActionResult` with a bounded error sample."""

    succeeded: int = 0
    missing: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    max_errors: int = 20

    def fail(self, job_id: str, reason: str, count: int = 1) -> None:
        self.failed += count
        if len(self.errors) < self.max_errors:
            self.errors.append(f"{job_id}: {reason}")

    def count(self, job_id: str, outcome: JobOutcome) -> None:
        """Add one job's answer from a grouped call."""
        if outcome.status == "succeeded":
            self.succeeded += 1
        elif outcome.status == "missing":
            self.missing += 1
        else:
            self.fail(outcome.name or job_id, outcome.reason)

    @property
    def done(self) -> int:
        return self.succeeded + self.missing + self.failed

    def result(self) -> ActionResult:
        return ActionResult(
            succeeded=self.succeeded,
            missing=self.missing,
            failed=self.failed,
            errors=tuple(self.errors),
        )

"""Fan one :class:`JobQuery` out to every selected project's Reader and merge the pages.

Each reader runs in its own thread under the store timeout; a project that errors or times out is
reported in ``errors`` and the others still answer. Rows merge by ``(failed_at, project,
sort_key)`` — descending for ``newest`` — and the merged cursor tells every reader where to
resume, so no store is ever read further than one page past the cursor.
"""

from __future__ import annotations

import builtins
import heapq
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import TypeVar

from failboard.drivers.base import Count, JobKey, KeyedReader, Reader
from failboard.exceptions import FailboardError, InvalidRequest, NotFound, Unsupported
from failboard.models import Cursor, FailedJob, JobQuery, Page, ProjectError, Seek, to_utc

__all__ = ["Aggregator"]

T = TypeVar("T")


class Aggregator:
    """Runs reader calls concurrently, each bounded by ``timeout`` seconds."""

    def __init__(self, readers: Mapping[str, Reader], timeout: float = 2.0) -> None:
        self.readers = dict(readers)
        self.timeout = timeout
        # Threads of a store that hangs stay busy until its own statement timeout fires, so the
        # pool is wide enough that one slow store cannot starve the others.
        self._pool = ThreadPoolExecutor(
            max_workers=min(64, 4 * max(1, len(self.readers))), thread_name_prefix="failboard-read"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def select(self, projects: Sequence[str] = ()) -> list[str]:
        """The project keys a query covers; an unknown key is NotFound."""
        if not projects:
            return list(self.readers)
        unknown = [p for p in projects if p not in self.readers]
        if unknown:
            raise NotFound(f"unknown project {unknown[0]!r}")
        return list(dict.fromkeys(projects))

    def fan_out(
        self, projects: Sequence[str], call: Callable[[Reader], T], timeout: float | None = None
    ) -> tuple[dict[str, T], list[ProjectError]]:
        """``call(reader)`` for each project concurrently; results and per-project errors.

        Each call is bounded by ``timeout`` (the store timeout unless given)."""
        timeout = self.timeout if timeout is None else timeout
        futures: dict[str, Future[T]] = {
            key: self._pool.submit(call, self.readers[key]) for key in projects
        }
        wait(futures.values(), timeout=timeout)
        results: dict[str, T] = {}
        errors: list[ProjectError] = []
        for key, future in futures.items():
            if not future.done():
                future.cancel()
                errors.append(ProjectError(project=key, error=f"timed out after {timeout:g} s"))
                continue
            exc = future.exception()
            if exc is None:
                results[key] = future.result()
            elif isinstance(exc, FailboardError):
                errors.append(ProjectError(project=key, error=exc.message))
            else:
                errors.append(ProjectError(project=key, error=f"{type(exc).__name__}: {exc}"))
        return results, errors

    def list(self, query: JobQuery, cursor: str | None = None) -> Page:
        """One merged page across the query's projects, newest (or oldest) first.

        Two steps where readers allow it (:class:`KeyedReader`): every project's top positions
        are merged, then only the page's rows are fetched, from the projects that have any."""
        projects = self.select(query.projects)
        position = Cursor.decode(cursor) if cursor else None
        if position is not None and position.order != query.order:
            raise InvalidRequest("cursor: it belongs to the other sort order; start again")
        # One row more than the page tells whether there is a next page.
        per_reader = query.model_copy(update={"limit": query.limit + 1, "seek": None})

        def read(reader: Reader) -> builtins.list[JobKey | FailedJob]:
            seek = _seek_for(reader.project, position, query.order)
            sub = per_reader.model_copy(update={"seek": seek})
            if isinstance(reader, KeyedReader):
                try:
                    return reader.keys(sub)
                except Unsupported:
                    pass
            return builtins.list(reader.list(sub))

        started = time.monotonic()
        results, errors = self.fan_out(projects, read)
        newest = query.order == "newest"
        merged = heapq.merge(
            *(
                [(_merge_key(row.failed_at, key, newest), key, row) for row in results[key]]
                for key in projects
                if key in results
            ),
            key=lambda entry: entry[0],
        )
        winners = builtins.list(itertools.islice(merged, query.limit + 1))
        more = len(winners) > query.limit
        winners = winners[: query.limit]
        # The page as a whole stays near the store timeout: the fetch gets what the first step
        # left of it, but never less than a quarter (a dead store may have used all of it, and
        # the healthy ones' fetch takes milliseconds).
        left = max(self.timeout - (time.monotonic() - started), self.timeout / 4)
        fetched, fetch_errors = self._fetch(winners, left)
        items: builtins.list[FailedJob] = []
        for _, key, row in winners:
            job = row if isinstance(row, FailedJob) else fetched.get((key, row.sort_key))
            if job is not None:  # None: gone since its position was read, or its store failed
                items.append(job)
        next_cursor = None
        if more and winners:
            # From the last position, not the last row: a row deleted in between must not move
            # the next page back over rows this one already covered.
            _, key, last = winners[-1]
            if last.failed_at is not None:
                next_cursor = Cursor(
                    failed_at=last.failed_at, project=key, sort_key=last.sort_key, order=query.order
                ).encode()
        return Page(items=tuple(items), next_cursor=next_cursor, errors=(*errors, *fetch_errors))

    def _fetch(
        self, winners: Sequence[tuple[object, str, JobKey | FailedJob]], timeout: float
    ) -> tuple[dict[tuple[str, str], FailedJob], builtins.list[ProjectError]]:
        """The rows of the winners that are positions only, one call per project that has any."""
        wanted: dict[str, builtins.list[str]] = {}
        for _, key, row in winners:
            if not isinstance(row, FailedJob):
                wanted.setdefault(key, []).append(row.sort_key)
        if not wanted:
            return {}, []

        def fetch(reader: Reader) -> builtins.list[FailedJob]:
            assert isinstance(reader, KeyedReader)
            return reader.fetch(wanted[reader.project])

        results, errors = self.fan_out(builtins.list(wanted), fetch, timeout)
        rows = {(key, job.sort_key): job for key, jobs in results.items() for job in jobs}
        return rows, errors

    def count(
        self, query: JobQuery, cap: int = 10_000
    ) -> tuple[dict[str, Count], builtins.list[ProjectError]]:
        projects = self.select(query.projects)
        return self.fan_out(projects, lambda reader: reader.count(query, cap))


def _merge_key(failed_at: datetime | None, project: str, newest: bool) -> tuple[float, str]:
    # heapq.merge keeps each reader's own order within a project, so the key only has to order
    # rows of different projects: by time (negated for newest first), then by project key,
    # ascending in both orders, as _seek_for expects.
    when = to_utc(failed_at).timestamp() if failed_at else 0.0
    return (-when if newest else when, project)


def _seek_for(project: str, cursor: Cursor | None, order: str) -> Seek | None:
    """Where one project resumes, given the merged cursor.

    Rows are ordered by time, then project key (ascending in both orders), then the driver's key.
    A project before the cursor's project has already shown every row at the cursor's time; one
    after it has shown none of them; the cursor's own project resumes past its sort key.
    """
    if cursor is None:
        return None
    at: datetime = cursor.failed_at
    if project == cursor.project:
        return Seek(failed_at=at, sort_key=cursor.sort_key)
    if project < cursor.project:
        return Seek(failed_at=at, ties="skip")
    return Seek(failed_at=at, ties="keep")

"""Fan one :class:`JobQuery` out to every selected project's Reader and merge the pages.

Each reader runs in its own thread under the store timeout; a project that errors or times out is
reported in ``errors`` and the others still answer. Rows merge by ``(failed_at, project,
sort_key)`` — descending for ``newest`` — and the merged cursor tells every reader where to
resume, so no store is ever read further than one page past the cursor.
"""

from __future__ import annotations

import builtins
import heapq
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import TypeVar

from failboard.drivers.base import Count, Reader
from failboard.exceptions import FailboardError, InvalidRequest, NotFound
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
        self, projects: Sequence[str], call: Callable[[Reader], T]
    ) -> tuple[dict[str, T], list[ProjectError]]:
        """``call(reader)`` for each project concurrently; results and per-project errors."""
        futures: dict[str, Future[T]] = {
            key: self._pool.submit(call, self.readers[key]) for key in projects
        }
        wait(futures.values(), timeout=self.timeout)
        results: dict[str, T] = {}
        errors: list[ProjectError] = []
        for key, future in futures.items():
            if not future.done():
                future.cancel()
                errors.append(
                    ProjectError(project=key, error=f"timed out after {self.timeout:g} s")
                )
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
        """One merged page across the query's projects, newest (or oldest) first."""
        projects = self.select(query.projects)
        position = Cursor.decode(cursor) if cursor else None
        if position is not None and position.order != query.order:
            raise InvalidRequest("cursor: it belongs to the other sort order; start again")
        # One row more than the page tells whether there is a next page.
        per_reader = query.model_copy(update={"limit": query.limit + 1, "seek": None})

        def read(reader: Reader) -> list[FailedJob]:
            seek = _seek_for(reader.project, position, query.order)
            return reader.list(per_reader.model_copy(update={"seek": seek}))

        results, errors = self.fan_out(projects, read)
        newest = query.order == "newest"
        merged = heapq.merge(
            *(results[key] for key in projects if key in results),
            key=lambda job: _merge_key(job, newest),
        )
        items: list[FailedJob] = []
        for job in merged:
            items.append(job)
            if len(items) > query.limit:
                break
        next_cursor = None
        if len(items) > query.limit:
            items = items[: query.limit]
            last = items[-1]
            if last.failed_at is not None:
                next_cursor = Cursor(
                    failed_at=last.failed_at,
                    project=last.project,
                    sort_key=last.sort_key,
                    order=query.order,
                ).encode()
        return Page(items=tuple(items), next_cursor=next_cursor, errors=tuple(errors))

    def count(
        self, query: JobQuery, cap: int = 10_000
    ) -> tuple[dict[str, Count], builtins.list[ProjectError]]:
        projects = self.select(query.projects)
        return self.fan_out(projects, lambda reader: reader.count(query, cap))


def _merge_key(job: FailedJob, newest: bool) -> tuple[float, str]:
    # heapq.merge keeps each reader's own order within a project, so the key only has to order
    # rows of different projects: by time (negated for newest first), then by project key,
    # ascending in both orders, as _seek_for expects.
    when = to_utc(job.failed_at).timestamp() if job.failed_at else 0.0
    return (-when if newest else when, job.project)


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

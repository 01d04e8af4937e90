"""An in-memory Reader for unit tests of pure logic (the aggregator's merge and cursors).

Integration tests never use it: they read real stores.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence
from datetime import datetime

from failboard.drivers.base import Capabilities, Count, JobKey
from failboard.exceptions import StoreUnreachable
from failboard.models import FailedJob, FailedJobDetail, JobQuery, to_utc


class MemoryReader:
    capabilities = Capabilities()

    def __init__(
        self,
        project: str,
        rows: list[tuple[datetime, int]],
        *,
        fail: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.project = project
        self.jobs = [
            FailedJob(project=project, id=str(key), failed_at=at, sort_key=str(key), queue="q")
            for at, key in rows
        ]
        self.fail = fail
        self.delay = delay

    def _check(self) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise StoreUnreachable(f"{self.project}: cannot connect: refused")

    def list(self, query: JobQuery) -> list[FailedJob]:
        self._check()
        newest = query.order == "newest"

        def key(job: FailedJob) -> tuple[float, int]:
            assert job.failed_at is not None
            return (to_utc(job.failed_at).timestamp(), int(job.sort_key))

        rows = sorted(self.jobs, key=key, reverse=newest)
        seek = query.seek
        if seek is not None:
            at = to_utc(seek.failed_at).timestamp()

            def past(job: FailedJob) -> bool:
                t, k = key(job)
                if t != at:
                    return t < at if newest else t > at
                if seek.sort_key is None:
                    return seek.ties == "keep"
                return k < int(seek.sort_key) if newest else k > int(seek.sort_key)

            rows = [job for job in rows if past(job)]
        return rows[: query.limit]

    def get(self, job_id: str) -> FailedJobDetail | None:
        self._check()
        for job in self.jobs:
            if job.id == job_id:
                return FailedJobDetail(**job.model_dump())
        return None

    def count(self, query: JobQuery, cap: int = 10_000) -> Count:
        self._check()
        n = len(self.jobs)
        return Count(min(n, cap), n > cap)

    def queues(self) -> list[str]:
        return ["q"]

    def ping(self) -> None:
        self._check()

    def close(self) -> None:
        pass


class KeyedMemoryReader(MemoryReader):
    """A MemoryReader with the two-step face (KeyedReader); it records what it was asked to
    fetch, and ``vanish`` deletes jobs between a page's two steps."""

    def __init__(self, project: str, rows: list[tuple[datetime, int]], **kw: bool) -> None:
        super().__init__(project, rows, **kw)
        self.fetched: builtins.list[builtins.list[str]] = []
        self.vanish: set[str] = set()

    def keys(self, query: JobQuery) -> builtins.list[JobKey | FailedJob]:
        return [JobKey(job.failed_at, job.sort_key) for job in self.list(query)]

    def fetch(self, sort_keys: Sequence[str]) -> builtins.list[FailedJob]:
        self._check()
        self.fetched.append(list(sort_keys))
        self.jobs = [job for job in self.jobs if job.sort_key not in self.vanish]
        wanted = set(sort_keys)
        return [job for job in self.jobs if job.sort_key in wanted]

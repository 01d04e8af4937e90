"""Groups by fingerprint from a bounded, labelled sample of each project's newest failures.

No store keeps fingerprints: a fingerprint is computed in Python from the exception text and the
job name (:mod:`failboard.fingerprint`), at about 0.5-1 ms per failure on this project's
benchmark box. Exact counts over 1,000,000 failures would take minutes per request, so a group's
count is what a scan of each project's *newest* failures finds, and says so:

- a project is read newest first, page by page, until ``GROUP_SCAN_LIMIT`` failures or until
  ``GROUP_SCAN_SECONDS`` have passed since the request started, whichever comes first — the page
  answers in about a second whatever the stores hold, and never runs into the store timeout;
- :class:`GroupScan` says how many failures each project contributed and whether that was all of
  them (``complete``); counts are exact only when every project that answered was read
  to the end (``Group.exact``), otherwise it is "this many among the newest N per project";
- the result is kept ``GROUP_CACHE_SECONDS``, so reloads, the API and a "retry group" right
  after the page act on the same sample the operator looked at.

docs/dashboard.md describes the trade-off and the exact index that would replace it.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from failboard.aggregate import Aggregator
from failboard.board_types import Group
from failboard.drivers.base import Reader
from failboard.models import FailedJob, JobQuery, ProjectError, Seek

__all__ = [
    "GROUP_CACHE_SECONDS",
    "GROUP_SCAN_LIMIT",
    "GROUP_SCAN_SECONDS",
    "GroupCache",
    "GroupScan",
    "scan_groups",
]

GROUP_SCAN_LIMIT = 5_000
"""Failures read per project at most."""
GROUP_SCAN_SECONDS = 0.5
"""Wall time the scan of all projects may take: a page is started only before this deadline,
so a scan ends within this plus one page per project (~0.3 s for 10 projects)."""
GROUP_CACHE_SECONDS = 10.0
"""How long a scan serves repeated requests for the same projects and time range."""
_PAGE = 100
_CACHE_SIZE = 32


@dataclass(frozen=True, slots=True)
class GroupScan:
    """Groups, and what they were counted from."""

    groups: builtins.list[Group]
    errors: builtins.list[ProjectError]
    scanned: dict[str, int] = field(default_factory=dict)
    """Failures read per project (projects that answered)."""
    complete: dict[str, bool] = field(default_factory=dict)
    """Per project: True when the scan read every failure in range, not only the newest."""
    at: float = 0.0  # the scan's clock (time.monotonic) when it ended

    @property
    def exact(self) -> bool:
        """True when every project that answered was read to the end."""
        return all(self.complete.values())


def scan_groups(
    aggregator: Aggregator,
    keys: Sequence[str],
    since: datetime | None,
    *,
    limit: int = GROUP_SCAN_LIMIT,
    seconds: float = GROUP_SCAN_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> GroupScan:
    """Read each project's newest failures (within ``limit`` rows and ``seconds`` of
    ``clock``) and group them by fingerprint, biggest group first."""
    deadline = clock() + seconds
    complete: dict[str, bool] = {}

    def scan(reader: Reader) -> builtins.list[FailedJob]:
        rows: builtins.list[FailedJob] = []
        query = JobQuery(failed_after=since, limit=min(_PAGE, limit))
        done = False
        # The first page is always read, so every project shows its newest failures.
        while True:
            page = reader.list(query)
            rows.extend(page)
            if len(page) < query.limit or page[-1].failed_at is None:
                done = True
                break
            if len(rows) >= limit or clock() >= deadline:
                break
            query = query.model_copy(
                update={
                    "limit": min(_PAGE, limit - len(rows)),
                    "seek": Seek(failed_at=page[-1].failed_at, sort_key=page[-1].sort_key),
                }
            )
        complete[reader.project] = done
        return rows

    results, errors = aggregator.fan_out(keys, scan)
    groups: dict[str, Group] = {}
    for rows in results.values():
        for job in rows:
            key = job.fingerprint or "unknown"
            group = groups.get(key)
            if group is None:
                group = groups[key] = Group(
                    fingerprint=key,
                    exception_class=job.exception_class,
                    sample_message=job.exception_message,
                    name=job.name,
                )
            group.add(job)
    # A project read only in part may hold more of ANY group (also of one not seen there yet).
    exact = all(complete.get(key, False) for key in results)
    for group in groups.values():
        group.exact = exact
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.fingerprint))
    return GroupScan(
        groups=ordered,
        errors=errors,
        scanned={key: len(rows) for key, rows in results.items()},
        complete={key: complete.get(key, False) for key in results},
        at=clock(),
    )


class GroupCache:
    """The latest scans, by (projects, time range), for ``GROUP_CACHE_SECONDS``.

    One scan runs at a time per key: concurrent requests for the same groups wait for it rather
    than scanning the stores once each (50 operators opening /groups at once cost one scan)."""

    def __init__(
        self,
        ttl: float = GROUP_CACHE_SECONDS,
        limit: int = GROUP_SCAN_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.limit = limit  # failures read per project at most
        self.clock = clock
        self._scans: dict[tuple[tuple[str, ...], int | None], GroupScan] = {}
        self._locks: dict[tuple[tuple[str, ...], int | None], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(
        self, aggregator: Aggregator, keys: Sequence[str], since: datetime | None
    ) -> tuple[GroupScan, bool]:
        """The scan for ``keys`` and ``since``; True when it was made by this call."""
        # A range like "last 24 h" moves with the clock: its start, to the minute, is the key.
        key = (tuple(sorted(keys)), None if since is None else int(since.timestamp() // 60))
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._scans.get(key)
            if cached is not None and self.clock() - cached.at < self.ttl:
                return cached, False
            scan = scan_groups(aggregator, keys, since, limit=self.limit, clock=self.clock)
            with self._guard:
                self._scans[key] = scan
                if len(self._scans) > _CACHE_SIZE:
                    oldest = min(self._scans, key=lambda k: self._scans[k].at)
                    del self._scans[oldest]
                    self._locks.pop(oldest, None)
            return scan, True

    def clear(self) -> None:
        with self._guard:
            self._scans.clear()

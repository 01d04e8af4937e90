"""The functions the API, the pages and the CLI share: read across projects, request actions.

A :class:`Board` is built from :class:`~failboard.config.Settings` once. It opens project stores
lazily and never executes an action: its only write is a spool row (DESIGN principle 1).
"""

from __future__ import annotations

import builtins
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from failboard.aggregate import Aggregator
from failboard.board_types import Group, ProjectStatus
from failboard.config import ProjectSettings, Settings
from failboard.drivers import registry
from failboard.drivers.base import Count, HistogramReader, JobKey, KeyedReader, Reader
from failboard.exceptions import FailboardError, NotFound, StoreError, Unsupported
from failboard.flight import SingleFlight
from failboard.grouping import GroupCache, GroupScan
from failboard.models import (
    MAX_JOB_IDS,
    Action,
    ActionKind,
    ActionStatus,
    Cursor,
    FailedJob,
    FailedJobDetail,
    JobQuery,
    Page,
    ProjectError,
    Seek,
)
from failboard.redaction import DEFAULT_PATTERNS, Job, Redactor
from failboard.spool import Spool

__all__ = ["PAGE_REUSE_SECONDS", "Board", "Group", "ProjectStatus"]

PAGE_REUSE_SECONDS = 1.0
"""How long a list page that concurrent identical requests shared serves the next ones too
(one that nobody shared is never reused; see :mod:`failboard.flight`)."""


class Board:
    """Everything the dashboard, the API and the CLI do, over one set of settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        spool: Spool | None = None,
        readers: dict[str, Reader] | None = None,
    ) -> None:
        self.settings = settings
        self.projects: dict[str, ProjectSettings] = {p.key: p for p in settings.projects}
        self.spool = spool or Spool.from_settings(settings.spool)
        timeout = settings.server.store_timeout_seconds
        self.readers: dict[str, Reader] = readers or {
            key: _LazyReader(project, timeout) for key, project in self.projects.items()
        }
        self.aggregator = Aggregator(self.readers, timeout=timeout)
        self.redactors = {
            key: Redactor((*DEFAULT_PATTERNS, *project.redact))
            for key, project in self.projects.items()
        }
        self._group_redactor = Redactor(
            (*DEFAULT_PATTERNS, *(p for project in self.projects.values() for p in project.redact))
        )
        self._submitted: list[Callable[[Action], None]] = []
        self._group_cache = GroupCache()
        self._pages: SingleFlight[Page] = SingleFlight(reuse_seconds=PAGE_REUSE_SECONDS)
        # Per-project store errors seen since start, for /metrics.
        self.store_errors: Counter[str] = Counter()

    def close(self) -> None:
        self.aggregator.close()
        for reader in self.readers.values():
            reader.close()
        self.spool.close()

    def on_submit(self, callback: Callable[[Action], None]) -> None:
        """Call ``callback`` after each new action (the inline agents' wake-up)."""
        self._submitted.append(callback)

    def project(self, key: str) -> ProjectSettings:
        return self.settings.project(key)

    # -- reading -----------------------------------------------------------------------------

    def redacted(self, job: Job) -> Job:
        """``job`` with its project's sensitive values masked: every reader's output goes
        through here before anyone sees it."""
        redactor = self.redactors.get(job.project) or Redactor()
        return redactor.job(job)

    def _redacted_page(self, page: Page) -> Page:
        return page.model_copy(update={"items": tuple(self.redacted(j) for j in page.items)})

    def _noted(self, errors: Iterable[ProjectError]) -> None:
        for error in errors:
            self.store_errors[error.project] += 1

    def list_jobs(self, query: JobQuery, cursor: str | None = None) -> Page:
        # Identical requests in flight share one fan-out (the query holds the caller's scope).
        return self._pages.run((query, cursor), lambda: self._list_jobs(query, cursor))

    def _list_jobs(self, query: JobQuery, cursor: str | None) -> Page:
        page = self.aggregator.list(query, cursor)
        self._noted(page.errors)
        return self._redacted_page(page)

    def list_jobs_before(self, query: JobQuery, before: str) -> tuple[Page, bool]:
        """The page that ends just before the row ``before`` points at (the "previous" page):
        read in the other order from that row, then turned round. Also whether there are rows
        before this page."""
        position = Cursor.decode(before)
        other = "oldest" if query.order == "newest" else "newest"
        back = Cursor(
            failed_at=position.failed_at,
            project=position.project,
            sort_key=position.sort_key,
            order=other,
        ).encode()
        page = self.aggregator.list(query.model_copy(update={"order": other}), back)
        self._noted(page.errors)
        items = tuple(reversed(page.items))
        next_cursor = None
        if items and items[-1].failed_at is not None:
            last = items[-1]
            next_cursor = Cursor(
                failed_at=last.failed_at,
                project=last.project,
                sort_key=last.sort_key,
                order=query.order,
            ).encode()
        turned = Page(items=items, next_cursor=next_cursor, errors=page.errors)
        return self._redacted_page(turned), page.next_cursor is not None

    def job_ids(
        self, query: JobQuery, limit: int = MAX_JOB_IDS
    ) -> tuple[dict[str, builtins.list[str]], builtins.list[ProjectError]]:
        """The ids of every job matching ``query``, up to ``limit`` per project, read now: the
        frozen set a "select all matching" acts on. Pages in the store, one round at a time, so
        each round stays under the store timeout."""
        keys = self.aggregator.select(query.projects)
        found: dict[str, builtins.list[str]] = {key: [] for key in keys}
        seeks: dict[str, Seek | None] = dict.fromkeys(keys)
        active = list(keys)
        errors: list[ProjectError] = []
        page_size = 500
        while active:

            def read(reader: Reader) -> builtins.list[FailedJob]:
                want = min(page_size, limit - len(found[reader.project]))
                return reader.list(
                    query.model_copy(update={"limit": want, "seek": seeks[reader.project]})
                )

            results, failed = self.aggregator.fan_out(active, read)
            errors.extend(failed)
            still = []
            for key, rows in results.items():
                found[key].extend(job.id for job in rows)
                full = len(found[key]) >= limit
                if rows and not full and len(rows) == page_size and rows[-1].failed_at:
                    seeks[key] = Seek(failed_at=rows[-1].failed_at, sort_key=rows[-1].sort_key)
                    still.append(key)
            active = still
        self._noted(errors)
        failed_keys = {e.project for e in errors}
        return {k: v for k, v in found.items() if k not in failed_keys}, errors

    def open_actions(self, jobs: Iterable[FailedJob]) -> dict[tuple[str, str], Action]:
        """(project, job id) → the pending/processing retry or delete that names the job, so a
        page does not offer to act twice. Empty when the spool cannot answer."""
        by_project: dict[str, builtins.list[str]] = {}
        for job in jobs:
            by_project.setdefault(job.project, []).append(job.id)
        found: dict[tuple[str, str], Action] = {}
        try:
            for project, ids in by_project.items():
                for job_id, action in self.spool.open_actions_for_jobs(project, ids).items():
                    found[(project, job_id)] = action
        except FailboardError:
            return {}
        return found

    def histogram(
        self, projects: Sequence[str], start: datetime, step: timedelta, buckets: int
    ) -> tuple[dict[str, builtins.list[int]], builtins.list[ProjectError]]:
        """Failures per bucket for each project (see :class:`HistogramReader`); a driver without
        a histogram is asked one capped count per bucket instead."""
        cap = self.settings.server.count_cap

        def read(reader: Reader) -> builtins.list[int]:
            if isinstance(reader, HistogramReader):
                try:
                    return reader.histogram(start, step, buckets)
                except Unsupported:
                    pass
            out = []
            for i in range(buckets):
                query = JobQuery(
                    failed_after=start + step * i,
                    failed_before=start + step * (i + 1) - timedelta(microseconds=1),
                )
                out.append(reader.count(query, cap).value)
            return out

        results, errors = self.aggregator.fan_out(self.aggregator.select(projects), read)
        self._noted(errors)
        return results, errors

    def action_counts(self) -> dict[tuple[str, str, str], int]:
        """(project, action, status) → how many actions the spool holds; empty when the spool
        cannot answer (the metrics page still renders)."""
        try:
            return self.spool.action_counts()
        except FailboardError:
            return {}

    def get_job(self, project: str, job_id: str) -> FailedJobDetail:
        self.project(project)
        results, errors = self.aggregator.fan_out([project], lambda r: r.get(job_id))
        if errors:
            raise StoreError(f"project {project}: {errors[0].error}")
        job = results[project]
        if job is None:
            raise NotFound(f"no failed job {job_id!r} in project {project!r}")
        return self.redacted(job)

    def count_jobs(
        self, query: JobQuery, cap: int | None = None
    ) -> tuple[dict[str, Count], list[ProjectError]]:
        counts, errors = self.aggregator.count(query, cap or self.settings.server.count_cap)
        self._noted(errors)
        return counts, errors

    def queues(self, projects: Sequence[str] = ()) -> dict[str, list[str]]:
        results, _ = self.aggregator.fan_out(self.aggregator.select(projects), lambda r: r.queues())
        return results

    def projects_status(self) -> list[ProjectStatus]:
        counts, errors = self.count_jobs(JobQuery())
        failed = {e.project: e.error for e in errors}
        try:
            open_counts = self.spool.open_counts()
            seen = self.spool.agents_last_seen()
        except FailboardError:
            open_counts, seen = {}, {}
        out = []
        for key, project in self.projects.items():
            count = counts.get(key)
            out.append(
                ProjectStatus(
                    key=key,
                    name=project.name or key,
                    driver=project.driver,
                    status="unreachable" if key in failed else "ok",
                    error=failed.get(key),
                    failed_count=count.value if count else None,
                    failed_count_capped=count.capped if count else False,
                    pending_actions=open_counts.get(key, 0),
                    agent_last_seen=seen.get(key),
                    agent=project.agent,
                )
            )
        return out

    def groups(
        self, projects: Sequence[str] = (), since: datetime | None = None
    ) -> tuple[list[Group], list[ProjectError]]:
        """Failures grouped by fingerprint, across projects, from each project's newest
        failures (a bounded, labelled sample: see :mod:`failboard.grouping`)."""
        scan = self.group_scan(projects, since)
        return scan.groups, scan.errors

    def group_scan(self, projects: Sequence[str] = (), since: datetime | None = None) -> GroupScan:
        """:meth:`groups` with what they were counted from (failures read per project, and
        whether that was all of them); cached briefly, see :class:`GroupCache`."""
        scan, fresh = self._group_cache.get(
            self.aggregator, self.aggregator.select(projects), since
        )
        if fresh:
            self._noted(scan.errors)
            # A group spans projects: its sample is masked with every project's patterns.
            for group in scan.groups:
                group.sample_message = self._group_redactor.text(group.sample_message)
        return scan

    # -- actions -----------------------------------------------------------------------------

    def submit(
        self,
        project: str,
        action: ActionKind | str,
        params: dict[str, Any],
        *,
        requested_by: str | None = None,
        idempotency_key: str | None = None,
    ) -> Action:
        """Write an action to the spool (the only write the dashboard ever makes)."""
        settings = self.project(project)
        kind = ActionKind(action) if not isinstance(action, ActionKind) else action
        capabilities = self.readers[project].capabilities
        if kind not in capabilities.actions:
            raise Unsupported(f"the {settings.driver} driver of {project!r} cannot {kind}")
        created = self.spool.submit(
            project, kind, params, requested_by=requested_by, idempotency_key=idempotency_key
        )
        self._pages.forget()  # the next page shows what this action changes, once it has
        for callback in self._submitted:
            callback(created)
        return created

    def actions(
        self,
        *,
        project: str | Sequence[str] | None = None,
        status: ActionStatus | str | None = None,
        limit: int = 50,
    ) -> list[Action]:
        return self.spool.list(project=project, status=status, limit=limit)

    def action(self, action_id: int) -> Action:
        return self.spool.get(action_id)

    def cancel(self, action_id: int, by: str | None = None) -> Action:
        return self.spool.cancel(action_id, by=by)


class _LazyReader:
    """Builds the real reader on first use, so a bad project cannot stop the board starting and
    its error shows where that project is asked for."""

    def __init__(self, project: ProjectSettings, timeout: float) -> None:
        self.project = project.key
        self._settings = project
        self._timeout = timeout
        self._reader: Reader | None = None
        self._lock = threading.Lock()
        self.capabilities = registry.capabilities(project.driver)

    @property
    def reader(self) -> Reader:
        with self._lock:
            if self._reader is None:
                self._reader = registry.make_reader(self._settings, self._timeout)
            return self._reader

    def list(self, query: JobQuery) -> builtins.list[FailedJob]:
        return self.reader.list(query)

    def keys(self, query: JobQuery) -> builtins.list[JobKey | FailedJob]:
        reader = self.reader
        if not isinstance(reader, KeyedReader):
            raise Unsupported(f"the {self._settings.driver} reader lists in one step")
        return reader.keys(query)

    def fetch(self, sort_keys: Sequence[str]) -> builtins.list[FailedJob]:
        reader = self.reader
        assert isinstance(reader, KeyedReader)  # fetch follows a keys() that answered
        return reader.fetch(sort_keys)

    def get(self, job_id: str) -> FailedJobDetail | None:
        return self.reader.get(job_id)

    def count(self, query: JobQuery, cap: int = 10_000) -> Count:
        return self.reader.count(query, cap)

    def queues(self) -> builtins.list[str]:
        return self.reader.queues()

    def histogram(self, start: datetime, step: timedelta, buckets: int) -> builtins.list[int]:
        reader = self.reader
        if not isinstance(reader, HistogramReader):
            raise Unsupported(f"the {self._settings.driver} reader has no histogram")
        return reader.histogram(start, step, buckets)

    def ping(self) -> None:
        self.reader.ping()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

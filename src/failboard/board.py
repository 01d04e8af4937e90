"""The functions the API, the pages and the CLI share: read across projects, request actions.

A :class:`Board` is built from :class:`~failboard.config.Settings` once. It opens project stores
lazily and never executes an action: its only write is a spool row (DESIGN principle 1).
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from failboard.aggregate import Aggregator
from failboard.config import ProjectSettings, Settings
from failboard.drivers import registry
from failboard.drivers.base import Count, Reader
from failboard.exceptions import FailboardError, NotFound, StoreError, Unsupported
from failboard.models import (
    Action,
    ActionKind,
    ActionStatus,
    FailedJob,
    FailedJobDetail,
    JobQuery,
    Page,
    ProjectError,
    Seek,
    to_utc,
)
from failboard.spool import Spool

__all__ = ["Board", "Group", "ProjectStatus"]

GROUP_SCAN_LIMIT = 5_000
"""Groups are built from at most this many of each project's newest failures."""


@dataclass(frozen=True, slots=True)
class ProjectStatus:
    key: str
    name: str
    driver: str
    status: str
    error: str | None
    failed_count: int | None
    failed_count_capped: bool
    pending_actions: int
    agent_last_seen: datetime | None
    agent: str

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "driver": self.driver,
            "status": self.status,
            "error": self.error,
            "failed_count": self.failed_count,
            "failed_count_capped": self.failed_count_capped,
            "pending_actions": self.pending_actions,
            "agent_last_seen": _iso(self.agent_last_seen),
            "agent": self.agent,
        }


@dataclass(slots=True)
class Group:
    fingerprint: str
    exception_class: str | None
    sample_message: str | None
    name: str | None
    count: int = 0
    projects: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    first_seen: datetime | None = None
    last_seen: datetime | None = None

    def add(self, job: FailedJob) -> None:
        self.count += 1
        self.projects.add(job.project)
        if job.name:
            self.names.add(job.name)
        if job.failed_at is not None:
            at = to_utc(job.failed_at)
            self.first_seen = at if self.first_seen is None else min(self.first_seen, at)
            self.last_seen = at if self.last_seen is None else max(self.last_seen, at)

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "exception_class": self.exception_class,
            "sample_message": self.sample_message,
            "name": self.name,
            "names": sorted(self.names),
            "count": self.count,
            "projects": sorted(self.projects),
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else to_utc(value).isoformat().replace("+00:00", "Z")


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
        self._submitted: list[Callable[[Action], None]] = []

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

    def list_jobs(self, query: JobQuery, cursor: str | None = None) -> Page:
        return self.aggregator.list(query, cursor)

    def get_job(self, project: str, job_id: str) -> FailedJobDetail:
        self.project(project)
        results, errors = self.aggregator.fan_out([project], lambda r: r.get(job_id))
        if errors:
            raise StoreError(f"project {project}: {errors[0].error}")
        job = results[project]
        if job is None:
            raise NotFound(f"no failed job {job_id!r} in project {project!r}")
        return job

    def count_jobs(self, query: JobQuery) -> tuple[dict[str, Count], list[ProjectError]]:
        return self.aggregator.count(query, self.settings.server.count_cap)

    def queues(self, projects: Sequence[str] = ()) -> dict[str, list[str]]:
        results, _ = self.aggregator.fan_out(self.aggregator.select(projects), lambda r: r.queues())
        return results

    def projects_status(self) -> list[ProjectStatus]:
        counts, errors = self.aggregator.count(JobQuery(), self.settings.server.count_cap)
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
        ``GROUP_SCAN_LIMIT`` failures (paged in the store, never loaded whole)."""
        keys = self.aggregator.select(projects)

        def scan(reader: Reader) -> list[FailedJob]:
            rows: list[FailedJob] = []
            query = JobQuery(failed_after=since, limit=500)
            while len(rows) < GROUP_SCAN_LIMIT:
                page = reader.list(query)
                rows.extend(page)
                if len(page) < query.limit or page[-1].failed_at is None:
                    break
                query = query.model_copy(
                    update={"seek": Seek(failed_at=page[-1].failed_at, sort_key=page[-1].sort_key)}
                )
            return rows

        results, errors = self.aggregator.fan_out(keys, scan)
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
        ordered = sorted(groups.values(), key=lambda g: (-g.count, g.fingerprint))
        return ordered, errors

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

    def get(self, job_id: str) -> FailedJobDetail | None:
        return self.reader.get(job_id)

    def count(self, query: JobQuery, cap: int = 10_000) -> Count:
        return self.reader.count(query, cap)

    def queues(self) -> builtins.list[str]:
        return self.reader.queues()

    def ping(self) -> None:
        self.reader.ping()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

"""What the board reports: a project's status and a group of failures that share a fingerprint."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from failboard.models import FailedJob, to_utc

__all__ = ["Group", "ProjectStatus"]


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
    # False when the count comes from the newest failures of a project read only in part
    # (see failboard.grouping): "this many among those read", not "this many in all".
    exact: bool = True
    # Kept for "retry group" and the sparkline; bounded by GROUP_SCAN_LIMIT per project.
    ids: dict[str, list[str]] = field(default_factory=dict)
    hours: Counter[int] = field(default_factory=Counter)

    def add(self, job: FailedJob) -> None:
        self.count += 1
        self.projects.add(job.project)
        self.ids.setdefault(job.project, []).append(job.id)
        if job.name:
            self.names.add(job.name)
        if job.failed_at is not None:
            at = to_utc(job.failed_at)
            self.first_seen = at if self.first_seen is None else min(self.first_seen, at)
            self.last_seen = at if self.last_seen is None else max(self.last_seen, at)
            self.hours[int(at.timestamp() // 3600)] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "exception_class": self.exception_class,
            "sample_message": self.sample_message,
            "name": self.name,
            "names": sorted(self.names),
            "count": self.count,
            "count_exact": self.exact,
            "projects": sorted(self.projects),
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else to_utc(value).isoformat().replace("+00:00", "Z")

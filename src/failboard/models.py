"""One vocabulary for every layer: failed jobs, the query that pages over them, and actions.

These are the shapes of CONTRACT §3. They are frozen pydantic models so that the API, the CLI's
``--json`` and the OpenAPI document all come from the same definitions.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from failboard.exceptions import InvalidRequest

__all__ = [
    "MAX_JOB_IDS",
    "Action",
    "ActionKind",
    "ActionProgress",
    "ActionResult",
    "ActionStatus",
    "Cursor",
    "FailedJob",
    "FailedJobDetail",
    "JobQuery",
    "Order",
    "Page",
    "Seek",
    "UtcDateTime",
    "to_utc",
]

MAX_JOB_IDS = 10_000
"""The most job ids one retry/delete action may carry (CONTRACT §3)."""


def to_utc(value: datetime) -> datetime:
    """Aware UTC datetime; a naive one is taken to be UTC already (how every store keeps time)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _iso_z(value: datetime) -> str:
    text = to_utc(value).isoformat()
    return text.replace("+00:00", "Z")


UtcDateTime = Annotated[datetime, PlainSerializer(_iso_z, return_type=str, when_used="json")]
"""A datetime that serialises as UTC ISO 8601 with ``Z``."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FailedJob(_Frozen):
    """One failed job as the list shows it."""

    project: str
    id: str = Field(description="The driver's own handle for the job, the one actions use.")
    uuid: str | None = None
    connection: str | None = None
    queue: str | None = None
    name: str | None = None
    exception_class: str | None = None
    exception_message: str | None = None
    failed_at: UtcDateTime | None = None
    attempts: int | None = None
    fingerprint: str | None = None
    # The reader's tie-breaker for keyset paging within one project (e.g. Laravel's numeric id).
    sort_key: str = Field(default="", exclude=True)


class FailedJobDetail(FailedJob):
    """One failed job in full."""

    payload: Any = Field(default=None, description="Decoded JSON where it parses, else raw text.")
    exception: str | None = Field(default=None, description="Full exception text with traceback.")
    args: Any = None
    max_tries: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="Driver-specific fields.")


Order = Literal["newest", "oldest"]


class Seek(_Frozen):
    """Where a reader resumes: rows strictly past this point in the query's order.

    The order is ``(failed_at, sort_key)`` descending for ``newest``. ``sort_key=None`` means the
    point sits at the edge of all rows sharing ``failed_at``: past all of them when ``ties`` is
    ``"skip"``, before all of them when ``ties`` is ``"keep"``. The aggregator needs both to merge
    projects whose rows share a timestamp.
    """

    failed_at: UtcDateTime
    sort_key: str | None = None
    ties: Literal["skip", "keep"] = "skip"


class JobQuery(_Frozen):
    """One query object crosses the driver boundary. Every filter runs in the store."""

    projects: tuple[str, ...] = ()
    queue: str | None = None
    connection: str | None = None
    name: str | None = None
    exception: str | None = None
    q: str | None = None
    failed_after: UtcDateTime | None = None
    failed_before: UtcDateTime | None = None
    order: Order = "newest"
    limit: int = Field(default=50, ge=1, le=500)
    seek: Seek | None = None


class Page(_Frozen):
    """A page of jobs across projects, the cursor of the next one and per-project errors."""

    items: tuple[FailedJob, ...]
    next_cursor: str | None = None
    errors: tuple[ProjectError, ...] = ()


class ProjectError(_Frozen):
    project: str
    error: str


class Cursor(_Frozen):
    """The position after the last row of a merged page: ``(failed_at, project, sort_key)``."""

    failed_at: UtcDateTime
    project: str
    sort_key: str
    order: Order = "newest"

    def encode(self) -> str:
        raw = json.dumps(
            [_iso_z(self.failed_at), self.project, self.sort_key, self.order],
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            at, project, key, order = json.loads(raw)
            return cls(
                failed_at=datetime.fromisoformat(at), project=project, sort_key=key, order=order
            )
        except (ValueError, TypeError, binascii.Error) as exc:
            raise InvalidRequest("cursor: not a cursor this server gave out") from exc


class ActionKind(StrEnum):
    RETRY = "retry"
    DELETE = "delete"
    RETRY_QUEUE = "retry_queue"
    PRUNE = "prune"


class ActionStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (ActionStatus.COMPLETED, ActionStatus.FAILED, ActionStatus.CANCELLED)


class ActionProgress(_Frozen):
    done: int = 0
    total: int | None = None


class ActionResult(_Frozen):
    """What happened to the jobs an action touched."""

    succeeded: int = 0
    missing: int = 0
    failed: int = 0
    errors: tuple[str, ...] = Field(
        default=(), description="A bounded sample of per-job errors, for the operator."
    )
    details: dict[str, Any] = Field(default_factory=dict)

    def merged(self, other: ActionResult, max_errors: int = 20) -> ActionResult:
        return ActionResult(
            succeeded=self.succeeded + other.succeeded,
            missing=self.missing + other.missing,
            failed=self.failed + other.failed,
            errors=(self.errors + other.errors)[:max_errors],
            details={**self.details, **other.details},
        )

    @property
    def total(self) -> int:
        return self.succeeded + self.missing + self.failed


class Action(_Frozen):
    """A request to do something to a project's failed jobs, waiting in the spool for an agent."""

    id: int
    project: str
    action: ActionKind
    params: dict[str, Any]
    status: ActionStatus
    requested_by: str | None = None
    created_at: UtcDateTime
    claimed_by: str | None = None
    claimed_at: UtcDateTime | None = None
    finished_at: UtcDateTime | None = None
    attempts: int = 0
    max_attempts: int = 3
    progress: ActionProgress = ActionProgress()
    result: ActionResult | None = None
    error: str | None = None
    idempotency_key: str | None = None
    lease_until: UtcDateTime | None = None
    claim_token: str | None = Field(default=None, exclude=True)


Page.model_rebuild()

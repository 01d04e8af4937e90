"""Rows of the spool's tables as the package's vocabulary: :class:`Action` and :class:`Event`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, RowMapping

from failboard import audit
from failboard.audit import AuditEvent
from failboard.db import utcnow
from failboard.models import (
    Action,
    ActionKind,
    ActionProgress,
    ActionResult,
    ActionStatus,
    UtcDateTime,
    to_utc,
)
from failboard.spool.schema import Tables

__all__ = [
    "Event",
    "EventKind",
    "dumps",
    "to_action",
    "to_event",
    "write_event_groups",
    "write_events",
]


class EventKind:
    """The kinds of audit event: one per transition of an action."""

    SUBMITTED = "submitted"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRY_SCHEDULED = "retry_scheduled"
    REAPED = "reaped"
    RELEASED = "released"
    CANCELLED = "cancelled"


AUDIT_EVENTS = {
    EventKind.SUBMITTED: AuditEvent.ACTION_REQUESTED,
    EventKind.CLAIMED: AuditEvent.ACTION_CLAIMED,
    EventKind.COMPLETED: AuditEvent.ACTION_COMPLETED,
    EventKind.FAILED: AuditEvent.ACTION_FAILED,
    EventKind.RETRY_SCHEDULED: AuditEvent.ACTION_RETRY_SCHEDULED,
    EventKind.REAPED: AuditEvent.ACTION_REAPED,
    EventKind.RELEASED: AuditEvent.ACTION_RELEASED,
    EventKind.CANCELLED: AuditEvent.ACTION_CANCELLED,
}
"""The audit log's name for each kind of action event."""


class Event(BaseModel):
    """One entry of an action's append-only audit trail."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    action_id: int
    at: UtcDateTime
    kind: str
    actor: str | None = None
    detail: dict[str, Any] = {}


def dumps(value: Any) -> str:
    """Compact JSON as the spool stores it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _utc(value: Any) -> Any:
    return None if value is None else to_utc(value)


def to_action(row: RowMapping, *, with_token: bool = False) -> Action:
    """An Action from a row of the actions table.

    The claim token is a capability: only the claimer gets it (``with_token``), never readers.
    """
    result = row["result"]
    return Action(
        id=row["id"],
        project=row["project"],
        action=ActionKind(row["action"]),
        params=json.loads(row["params"]),
        status=ActionStatus(row["status"]),
        requested_by=row["requested_by"],
        created_at=to_utc(row["created_at"]),
        claimed_by=row["claimed_by"],
        claimed_at=_utc(row["claimed_at"]),
        finished_at=_utc(row["finished_at"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        progress=ActionProgress(done=row["progress_done"], total=row["progress_total"]),
        result=None if result is None else ActionResult.model_validate_json(result),
        error=row["error"],
        idempotency_key=row["idempotency_key"],
        lease_until=_utc(row["lease_until"]),
        claim_token=row["claim_token"] if with_token else None,
    )


def to_event(row: RowMapping) -> Event:
    """An Event from a row of the events table."""
    detail = json.loads(row["detail"]) if row["detail"] else {}
    return Event(
        id=row["id"],
        action_id=row["action_id"],
        at=to_utc(row["at"]),
        kind=row["kind"],
        actor=row["actor"],
        detail=detail if isinstance(detail, dict) else {"value": detail},
    )


def write_events(
    connection: Connection,
    t: Tables,
    kind: str,
    actor: str | None,
    project: str | None,
    details: Mapping[int, Mapping[str, Any]],
) -> None:
    """Append one event of ``kind`` per action (action id → detail), stamped by the DB clock,
    and one entry for all of them to the hash-chained audit log (a claim of 100 actions is one
    entry listing them: the chain's lock is taken once per transition, not per action).

    Called inside the transaction of the transition it records, so that the trail and the
    state never disagree; the audit entry goes last, as it locks the chain's head until commit.
    """
    write_event_groups(connection, t, [((kind, actor, project), details)])


Group = tuple[tuple[str, str | None, str | None], Mapping[int, Mapping[str, Any]]]
"""((kind, actor, project), action id → detail)."""


def write_event_groups(connection: Connection, t: Tables, groups: Sequence[Group]) -> None:
    """:func:`write_events` for several groups in one transaction: every event in ONE insert,
    then one audit entry per group, all of them after every other statement (the first one
    takes the chain's head, which then stays locked until the commit)."""
    rows = [
        {"action_id": action_id, "kind": kind, "actor": actor, "detail": dumps(dict(detail))}
        for (kind, actor, _), details in groups
        for action_id, detail in details.items()
    ]
    if not rows:
        return
    connection.execute(t.events.insert().values(at=utcnow()), rows)
    for (kind, actor, project), details in groups:
        if not details:
            continue
        if len(details) == 1:
            ((action_id, detail),) = details.items()
            single: int | None = action_id
            entry: dict[str, Any] = dict(detail)
        else:
            single = None
            entry = {"actions": {str(action_id): dict(d) for action_id, d in details.items()}}
        audit.record(
            connection,
            t,
            AUDIT_EVENTS.get(kind, f"action.{kind}"),
            actor=actor,
            project=project,
            action_id=single,
            detail=entry,
        )

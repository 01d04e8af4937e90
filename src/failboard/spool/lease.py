"""What the holder of a claim may do: heartbeat, report progress, complete, fail — each fenced.

Every write here is ``WHERE id = :id AND claim_token = :token AND status = 'processing'`` and
must change exactly one row. Anything else means the lease was taken back (the reaper gave the
action to someone else, or ended it) and the caller gets :class:`LeaseLost`: an agent that was
paused for longer than its lease can never overwrite the outcome of the agent that took over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, RowMapping

from failboard.db import utcnow
from failboard.exceptions import LeaseLost, NotFound
from failboard.models import ActionResult, ActionStatus
from failboard.spool.records import EventKind, dumps, write_events
from failboard.spool.schema import Tables

__all__ = [
    "MAX_ERROR_LENGTH",
    "clip",
    "extend",
    "finish",
    "give_back",
    "locked",
    "retry_delay",
    "summary",
]

MAX_ERROR_LENGTH = 4000
"""Errors are for an operator to read; a 10 MB traceback would only bloat the spool."""

MAX_RETRY_DELAY = 3600


def _fenced(t: Tables, action_id: int, token: str) -> list[sa.ColumnElement[bool]]:
    a = t.actions
    return [
        a.c.id == action_id,
        a.c.claim_token == token,
        a.c.status == ActionStatus.PROCESSING.value,
    ]


def _lost(connection: Connection, t: Tables, action_id: int) -> Exception:
    """Why the fence said no: NotFound for an action that never existed, else LeaseLost."""
    a = t.actions
    row = connection.execute(
        sa.select(a.c.status, a.c.claimed_by).where(a.c.id == action_id)
    ).first()
    if row is None:
        return NotFound(f"action {action_id} not found")
    now = f"it is {row.status} now"
    if row.status == ActionStatus.PROCESSING.value:
        now = f"it was claimed again by {row.claimed_by}"
    return LeaseLost(f"action {action_id}: our claim was taken back ({now})")


def extend(
    connection: Connection,
    t: Tables,
    action_id: int,
    token: str,
    lease_seconds: int,
    progress: Mapping[str, Any] | None = None,
) -> Any:
    """Push the lease ``lease_seconds`` past the DB's now (and store progress); the new
    ``lease_until``. No event: heartbeats are too chatty for the audit trail.

    A lease that ran out but was not taken back yet is still ours: nobody else holds the action,
    so extending it is safe (and saves the work done so far).
    """
    a = t.actions
    values: dict[str, Any] = {
        "lease_until": utcnow(lease_seconds),
        "heartbeat_at": utcnow(),
        "updated_at": utcnow(),
        **(progress or {}),
    }
    changed = connection.execute(
        a.update().where(*_fenced(t, action_id, token)).values(**values)
    ).rowcount
    if changed != 1:
        raise _lost(connection, t, action_id)
    return connection.execute(sa.select(a.c.lease_until).where(a.c.id == action_id)).scalar_one()


def locked(connection: Connection, t: Tables, action_id: int, token: str) -> RowMapping:
    """The claimed row, locked for the rest of the transaction; LeaseLost when not ours."""
    a = t.actions
    # FOR UPDATE is ignored on SQLite, where BEGIN IMMEDIATE already holds the write lock.
    row = (
        connection.execute(sa.select(a).where(*_fenced(t, action_id, token)).with_for_update())
        .mappings()
        .first()
    )
    if row is None:
        raise _lost(connection, t, action_id)
    return row


def summary(result: ActionResult) -> str | None:
    """The error of an action some of whose jobs failed: "3 of 10 jobs failed: <first errors>"."""
    if result.failed <= 0:
        return None
    text = f"{result.failed} of {result.total} jobs failed"
    if result.errors:
        text += ": " + "; ".join(result.errors[:3])
    return clip(text)


def clip(text: str) -> str:
    """``text`` cut to ``MAX_ERROR_LENGTH``."""
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


def retry_delay(attempts: int, retry_delay_seconds: int) -> int:
    """Seconds before a failed attempt runs again: ``retry_delay * 2**(attempts-1)``, growing
    to at most an hour (or the configured delay, if that is longer)."""
    cap = max(retry_delay_seconds, MAX_RETRY_DELAY)
    return int(min(retry_delay_seconds * 2 ** min(max(attempts - 1, 0), 20), cap))


def _update(connection: Connection, t: Tables, action_id: int, token: str, **values: Any) -> None:
    changed = connection.execute(
        t.actions.update()
        .where(*_fenced(t, action_id, token))
        .values(updated_at=utcnow(), **values)
    ).rowcount
    if changed != 1:  # we hold the row lock, so this is a bug rather than a race
        raise _lost(connection, t, action_id)


def finish(
    connection: Connection,
    t: Tables,
    row: RowMapping,
    token: str,
    *,
    status: ActionStatus,
    result: ActionResult | None,
    error: str | None,
) -> None:
    """End a claimed (and locked) action as completed or failed; writes the event."""
    error = None if error is None else clip(error)
    # The outcome says how far it got, so the agent need not write a last progress first.
    done = {} if result is None else {"progress_done": result.total, "progress_total": result.total}
    _update(
        connection,
        t,
        row["id"],
        token,
        status=status.value,
        finished_at=utcnow(),
        lease_until=None,
        result=None if result is None else dumps(result.model_dump(mode="json")),
        error=error,
        **done,
    )
    kind = EventKind.COMPLETED if status is ActionStatus.COMPLETED else EventKind.FAILED
    detail: dict[str, Any] = {"attempt": row["attempts"]}
    if result is not None:
        detail.update(succeeded=result.succeeded, missing=result.missing, failed=result.failed)
    if error is not None:
        detail["error"] = error[:500]
    write_events(connection, t, kind, row["claimed_by"], row["project"], {row["id"]: detail})


def give_back(
    connection: Connection,
    t: Tables,
    row: RowMapping,
    token: str,
    *,
    error: str,
    retry_delay_seconds: int,
) -> None:
    """Put a claimed (and locked) action back to pending after a retryable failure, available
    again after an exponential delay: ``retry_delay * 2**(attempts-1)``, growing to at most an
    hour (or the configured delay, if that is longer)."""
    error = clip(error)
    delay = retry_delay(row["attempts"], retry_delay_seconds)
    _update(
        connection,
        t,
        row["id"],
        token,
        status=ActionStatus.PENDING.value,
        available_at=utcnow(delay),
        claim_token=None,
        lease_until=None,
        heartbeat_at=None,
        error=error,
    )
    write_events(
        connection,
        t,
        EventKind.RETRY_SCHEDULED,
        row["claimed_by"],
        row["project"],
        {row["id"]: {"attempt": row["attempts"], "delay_seconds": delay, "error": error[:500]}},
    )


def release(connection: Connection, t: Tables, row: RowMapping, token: str, *, note: str) -> None:
    """Hand a claimed (and locked) action back untouched by failure: pending at once, and the
    attempt it was claimed under does not count (the agent stopped; the action did nothing
    wrong)."""
    note = clip(note)
    _update(
        connection,
        t,
        row["id"],
        token,
        status=ActionStatus.PENDING.value,
        available_at=utcnow(),
        attempts=max(int(row["attempts"]) - 1, 0),
        claim_token=None,
        lease_until=None,
        heartbeat_at=None,
        error=note,
    )
    write_events(
        connection,
        t,
        EventKind.RELEASED,
        row["claimed_by"],
        row["project"],
        {row["id"]: {"attempt": row["attempts"], "note": note[:500]}},
    )

"""Recording the outcomes of many claimed actions in ONE transaction (``Spool.settle``).

An agent that claimed ten one-job actions used to record each outcome in a transaction of its
own, each taking the audit chain's head (which serialises every audited commit of every agent).
Settling them together costs one transaction and one audit entry per kind of outcome, whatever
the number of actions: the rows are locked in id order, checked against their claim tokens
(the fence), changed by one UPDATE per kind, their events written by one multi-row INSERT, and
the audit entries appended last.

An outcome whose fence fails (the lease was taken back) is answered ``None`` for that action
alone; the others are recorded. Nothing here is less safe than one ``complete`` per action: the
effect in the project's store and its outcome in the spool were never one transaction, and a
crash before the settle commits makes the actions run again after their lease (see
docs/reliability.md: retried and deleted jobs then count as ``missing``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, RowMapping

from failboard.db import utcnow
from failboard.models import ActionResult, ActionStatus
from failboard.spool import lease
from failboard.spool.records import EventKind, dumps, write_event_groups
from failboard.spool.schema import Tables

__all__ = ["MAX_SETTLE", "Outcome", "Settled", "settle"]

MAX_SETTLE = 1000
"""Outcomes per call at most (the same bound as a claim)."""

PROCESSING = ActionStatus.PROCESSING.value


class Outcome(BaseModel):
    """What became of one claimed action: a ``result`` (completed, or failed when some jobs
    failed), or an ``error`` for the action as a whole (pending again after a delay when
    ``retryable`` and attempts are left, else failed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action_id: int
    claim_token: str = Field(min_length=1, max_length=64)
    result: ActionResult | None = None
    error: str | None = Field(default=None, max_length=100_000)
    retryable: bool = False


class Settled(BaseModel):
    """The answer for one outcome: the action's status now, or ``None`` when the claim had been
    taken back (nothing was written for it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action_id: int
    status: ActionStatus | None


def settle(
    connection: Connection,
    t: Tables,
    outcomes: Sequence[Outcome],
    *,
    retry_delay_seconds: int,
    project: str | None = None,
) -> list[Settled]:
    """Record ``outcomes`` inside the caller's transaction; one answer per outcome, in order.
    With ``project``, an action of another project is answered ``None`` like a lost claim."""
    a = t.actions
    ids = sorted({o.action_id for o in outcomes})
    query = sa.select(a).where(a.c.id.in_(ids), a.c.status == PROCESSING).order_by(a.c.id)
    if project is not None:
        query = query.where(a.c.project == project)
    # Locked in id order (FOR UPDATE is a no-op on SQLite, which holds the write lock): two
    # settles, a heartbeat and the reaper (SKIP LOCKED) can never wait on each other in a cycle.
    rows = {row["id"]: row for row in connection.execute(query.with_for_update()).mappings()}
    finished: dict[int, dict[str, Any]] = {}
    groups: dict[tuple[str, str | None, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    answers: dict[int, ActionStatus | None] = {}
    for outcome in outcomes:
        row = rows.get(outcome.action_id)
        if row is None or row["claim_token"] != outcome.claim_token or outcome.action_id in answers:
            answers.setdefault(outcome.action_id, None)
            continue
        status, values, kind, detail = _decide(row, outcome, retry_delay_seconds)
        answers[outcome.action_id] = status
        groups[(kind, row["claimed_by"], row["project"])][row["id"]] = detail
        if kind == EventKind.RETRY_SCHEDULED:
            # Rare (a crash of the executor), and each has its own delay: one statement each.
            connection.execute(
                a.update()
                .where(a.c.id == row["id"], a.c.claim_token == outcome.claim_token)
                .values(updated_at=utcnow(), **values)
            )
        else:
            finished[row["id"]] = values
    if finished:
        _finish_all(connection, t, finished, {i: rows[i]["claim_token"] for i in finished})
    write_event_groups(connection, t, list(groups.items()))
    return [Settled(action_id=o.action_id, status=answers[o.action_id]) for o in outcomes]


def _decide(
    row: RowMapping, outcome: Outcome, retry_delay_seconds: int
) -> tuple[ActionStatus, dict[str, Any], str, dict[str, Any]]:
    """The new status, the columns to write, the event kind and its detail."""
    detail: dict[str, Any] = {"attempt": row["attempts"]}
    result = outcome.result
    if result is not None:
        failed = result.failed > 0
        status = ActionStatus.FAILED if failed else ActionStatus.COMPLETED
        error = lease.summary(result)
        detail.update(succeeded=result.succeeded, missing=result.missing, failed=result.failed)
        if error is not None:
            detail["error"] = error[:500]
        done: dict[str, Any] = {
            "status": status.value,
            "result": dumps(result.model_dump(mode="json")),
            "error": error,
            # The outcome says how far it got: the agent skips the last progress write.
            "progress_done": result.total,
            "progress_total": result.total,
        }
        return status, done, EventKind.FAILED if failed else EventKind.COMPLETED, detail
    error = lease.clip(str(outcome.error or "").strip() or "failed (no error message)")
    detail["error"] = error[:500]
    if outcome.retryable and row["attempts"] < row["max_attempts"]:
        delay = lease.retry_delay(row["attempts"], retry_delay_seconds)
        detail["delay_seconds"] = delay
        values: dict[str, Any] = {
            "status": ActionStatus.PENDING.value,
            "available_at": utcnow(delay),
            "claim_token": None,
            "lease_until": None,
            "heartbeat_at": None,
            "error": error,
        }
        return ActionStatus.PENDING, values, EventKind.RETRY_SCHEDULED, detail
    ended: dict[str, Any] = {"status": ActionStatus.FAILED.value, "result": None, "error": error}
    return ActionStatus.FAILED, ended, EventKind.FAILED, detail


def _finish_all(
    connection: Connection, t: Tables, finished: dict[int, dict[str, Any]], tokens: dict[int, Any]
) -> None:
    """One UPDATE ending every finished action, each column a CASE on the id."""
    a = t.actions
    ids = sorted(finished)
    columns = ("status", "result", "error", "progress_done", "progress_total")
    values: dict[str, Any] = {}
    for column in columns:
        mapping = {i: finished[i].get(column) for i in ids}
        if column.startswith("progress_") and all(v is None for v in mapping.values()):
            continue  # a whole-action failure leaves the progress as it was
        if column.startswith("progress_"):
            values[column] = sa.case(
                {i: v for i, v in mapping.items() if v is not None},
                value=a.c.id,
                else_=a.c[column],
            )
        else:
            values[column] = sa.case(
                {i: sa.literal(v, a.c[column].type) for i, v in mapping.items()},
                value=a.c.id,
                else_=sa.null(),
            )
    changed = connection.execute(
        a.update()
        .where(
            a.c.id.in_(ids),
            a.c.status == PROCESSING,
            # The fence once more, in the statement itself: belt and braces over the lock.
            a.c.claim_token == sa.case(tokens, value=a.c.id),
        )
        .values(finished_at=utcnow(), lease_until=None, updated_at=utcnow(), **values)
    ).rowcount
    if changed != len(ids):  # the rows are locked: a bug rather than a race
        raise AssertionError(f"settle: {changed} of {len(ids)} locked actions changed")

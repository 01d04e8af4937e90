"""Taking actions for an agent (the claim) and taking them back when their lease ran out (the
reaper), one algorithm per database, each inside the caller's transaction.

- PostgreSQL: one statement, ``WITH picked AS (SELECT … FOR UPDATE SKIP LOCKED) UPDATE … FROM
  picked RETURNING …``; each claimed row gets its own ``gen_random_uuid()`` token.
- MySQL 8 / MariaDB 10.6+: ``SELECT … FOR UPDATE SKIP LOCKED`` then ``UPDATE … WHERE id IN``, read
  back by token (MariaDB has no ``UPDATE … RETURNING``).
- SQLite: the same two steps, under the database write lock that ``BEGIN IMMEDIATE`` took before
  the SELECT, so no other writer can come between them (one host only).

Rows are taken oldest-available first (``available_at, id``): exactly the order of the claim
index, so the scan stops after ``limit`` rows and locks no more than it returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import Connection, RowMapping

from failboard.db import utcnow
from failboard.models import ActionStatus
from failboard.spool.records import EventKind, write_events
from failboard.spool.schema import Tables

__all__ = ["REAP_BATCH", "claim_pending", "gave_up", "reap_expired"]

PENDING = ActionStatus.PENDING.value
PROCESSING = ActionStatus.PROCESSING.value
FAILED = ActionStatus.FAILED.value

REAP_BATCH = 500
"""Expired leases taken back per statement; the reaper loops until none are left."""


def gave_up(attempts: int) -> str:
    """The error of an action whose agents kept losing its lease."""
    times = "once" if attempts == 1 else f"{attempts} times"
    return f"agent lost the lease {times} (crashed or stopped?); giving up"


def claim_pending(
    connection: Connection,
    t: Tables,
    *,
    project: str,
    agent: str,
    limit: int,
    lease_seconds: int,
) -> list[RowMapping]:
    """Claim up to ``limit`` available pending actions of ``project`` for ``agent``; their rows
    (with their new claim tokens) oldest-available first. Writes a ``claimed`` event per action."""
    a = t.actions
    picked = (
        sa.select(a.c.id)
        .where(
            a.c.project == project,
            a.c.status == PENDING,
            a.c.available_at <= utcnow(),
            # Belt and braces: a pending row never has used up its attempts (fail and the
            # reaper end those), but a poison action must not run again if one ever does.
            a.c.attempts < a.c.max_attempts,
        )
        .order_by(a.c.available_at, a.c.id)
        .limit(limit)
    )
    claimed = {
        "status": PROCESSING,
        "claimed_by": agent,
        "claimed_at": utcnow(),
        "heartbeat_at": utcnow(),
        "lease_until": utcnow(lease_seconds),
        "updated_at": utcnow(),
        "attempts": a.c.attempts + 1,
    }
    dialect = connection.dialect.name
    rows: Sequence[RowMapping]
    if dialect == "postgresql":
        cte = picked.with_for_update(skip_locked=True).cte("picked")
        statement = (
            a.update()
            .where(a.c.id == cte.c.id)
            .values(claim_token=sa.cast(sa.func.gen_random_uuid(), sa.String(36)), **claimed)
            .returning(*a.c)
        )
        rows = connection.execute(statement).mappings().all()
    else:
        if dialect != "sqlite":
            picked = picked.with_for_update(skip_locked=True)
        ids = list(connection.execute(picked).scalars())
        if not ids:
            return []
        tokens = {action_id: str(uuid.uuid4()) for action_id in ids}
        connection.execute(
            a.update()
            .where(a.c.id.in_(ids), a.c.status == PENDING)
            .values(claim_token=sa.case(tokens, value=a.c.id), **claimed)
        )
        rows = (
            connection.execute(sa.select(a).where(a.c.claim_token.in_(list(tokens.values()))))
            .mappings()
            .all()
        )
    ordered = sorted(rows, key=lambda row: (row["available_at"], row["id"]))
    write_events(
        connection,
        t,
        EventKind.CLAIMED,
        agent,
        project,
        {row["id"]: {"attempt": row["attempts"]} for row in ordered},
    )
    return ordered


def reap_expired(connection: Connection, t: Tables, *, project: str | None) -> int:
    """Take back up to ``REAP_BATCH`` actions whose lease ran out: pending again, or failed once
    they used up their attempts. Writes a ``reaped`` event per action; returns how many."""
    a = t.actions
    expired = [a.c.status == PROCESSING, a.c.lease_until < utcnow()]
    if project is not None:
        expired.append(a.c.project == project)
    query = (
        sa.select(a.c.id, a.c.project, a.c.attempts, a.c.max_attempts, a.c.claimed_by)
        .where(*expired)
        .order_by(a.c.id)
        .limit(REAP_BATCH)
    )
    if connection.dialect.name != "sqlite":
        # A row another transaction holds is being heartbeated or finished right now: not ours.
        query = query.with_for_update(skip_locked=True)
    rows = connection.execute(query).mappings().all()
    if not rows:
        return 0
    again = [row for row in rows if row["attempts"] < row["max_attempts"]]
    dead = [row for row in rows if row["attempts"] >= row["max_attempts"]]
    released = {
        "claim_token": None,
        "lease_until": None,
        "heartbeat_at": None,
        "updated_at": utcnow(),
    }
    if again:
        connection.execute(
            a.update()
            .where(a.c.id.in_([row["id"] for row in again]), *expired)
            .values(status=PENDING, available_at=utcnow(), **released)
        )
    for row in dead:
        # One statement per poison action: the error names its own attempt count.
        connection.execute(
            a.update()
            .where(a.c.id == row["id"], *expired)
            .values(status=FAILED, finished_at=utcnow(), error=gave_up(row["attempts"]), **released)
        )
    # One audit entry per project of the batch: each project's trail stays its own.
    for key in sorted({row["project"] for row in rows}):
        write_events(
            connection,
            t,
            EventKind.REAPED,
            "reaper",
            key,
            {
                row["id"]: {
                    "claimed_by": row["claimed_by"],
                    "attempt": row["attempts"],
                    "outcome": PENDING if row["attempts"] < row["max_attempts"] else FAILED,
                }
                for row in rows
                if row["project"] == key
            },
        )
    return len(rows)

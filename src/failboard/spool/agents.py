"""The agents' side of the spool: claim actions, keep their leases, record their outcome."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from failboard.db import utcnow
from failboard.exceptions import InvalidRequest
from failboard.models import Action, ActionResult, ActionStatus, to_utc
from failboard.spool import claim as claiming
from failboard.spool import lease
from failboard.spool.base import SpoolBase
from failboard.spool.params import text_field
from failboard.spool.records import to_action
from failboard.spool.settle import MAX_SETTLE, Outcome, Settled, settle

__all__ = ["MAX_CLAIM", "AgentOperations"]

MAX_CLAIM = 1000


class AgentOperations(SpoolBase):
    """Operations an agent runs (directly, or through the HTTP API with its token)."""

    def claim(self, project: str, agent: str, limit: int = 10) -> list[Action]:
        """Claim up to ``limit`` of ``project``'s available actions for ``agent`` (e.g.
        ``host:pid``), oldest first. Each returned Action carries its own ``claim_token``; the
        lease lasts ``lease_seconds`` unless heartbeated. Expired leases of the project are
        taken back first, so a crashed agent's work is picked up by the next claim."""
        text_field("project", project, 64)
        text_field("agent", agent, 255)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CLAIM:
            raise InvalidRequest(f"limit: must be 1 to {MAX_CLAIM}")
        self.reap(project)
        with self._errors():
            rows = self._write(
                lambda c: claiming.claim_pending(
                    c,
                    self.tables,
                    project=project,
                    agent=agent,
                    limit=limit,
                    lease_seconds=self.lease_seconds,
                )
            )
        return [to_action(row, with_token=True) for row in rows]

    def heartbeat(self, action_id: int, token: str) -> datetime:
        """Extend the lease; the new ``lease_until``. LeaseLost when the claim was taken back."""
        with self._errors():
            until = self._write(
                lambda c: lease.extend(c, self.tables, action_id, token, self.lease_seconds)
            )
        return to_utc(until)

    def progress(self, action_id: int, token: str, done: int, total: int | None) -> None:
        """Record progress (jobs done of ``total``, None if unknown); extends the lease too."""
        if isinstance(done, bool) or not isinstance(done, int) or done < 0:
            raise InvalidRequest("done: must be an integer >= 0")
        if total is not None and (
            isinstance(total, bool) or not isinstance(total, int) or total < 0
        ):
            raise InvalidRequest("total: must be an integer >= 0 or null")
        values = {"progress_done": done, "progress_total": total}
        with self._errors():
            self._write(
                lambda c: lease.extend(c, self.tables, action_id, token, self.lease_seconds, values)
            )

    def complete(self, action_id: int, token: str, result: ActionResult) -> Action:
        """Record the outcome: ``completed``, or ``failed`` with an error summarising the failed
        jobs when ``result.failed > 0``. LeaseLost when the claim was taken back."""

        def work(connection: Connection) -> Action:
            row = lease.locked(connection, self.tables, action_id, token)
            status = ActionStatus.FAILED if result.failed > 0 else ActionStatus.COMPLETED
            lease.finish(
                connection,
                self.tables,
                row,
                token,
                status=status,
                result=result,
                error=lease.summary(result),
            )
            return self._action(connection, action_id)

        with self._errors():
            return self._write(work)

    def settle(self, outcomes: Sequence[Outcome], *, project: str | None = None) -> list[Settled]:
        """Record the outcomes of many claimed actions in ONE transaction (one audit entry per
        kind of outcome): what ``complete`` and ``fail`` do, each fenced by its claim token. The
        answer for an action whose claim was taken back is ``status = None`` (the others are
        still recorded). With ``project``, actions of other projects are answered the same."""
        if len(outcomes) > MAX_SETTLE:
            raise InvalidRequest(f"outcomes: at most {MAX_SETTLE} per call")
        if not outcomes:
            return []
        with self._errors():
            return self._write(
                lambda c: settle(
                    c,
                    self.tables,
                    outcomes,
                    retry_delay_seconds=self.retry_delay_seconds,
                    project=project,
                )
            )

    def fail(self, action_id: int, token: str, error: str, *, retryable: bool = True) -> Action:
        """The action as a whole failed. Retryable with attempts left: pending again after a
        growing delay (``retry_delay_seconds * 2**(attempts-1)``); otherwise ``failed``.
        LeaseLost when the claim was taken back."""
        error = str(error).strip() or "failed (no error message)"

        def work(connection: Connection) -> Action:
            row = lease.locked(connection, self.tables, action_id, token)
            if retryable and row["attempts"] < row["max_attempts"]:
                lease.give_back(
                    connection,
                    self.tables,
                    row,
                    token,
                    error=error,
                    retry_delay_seconds=self.retry_delay_seconds,
                )
            else:
                lease.finish(
                    connection,
                    self.tables,
                    row,
                    token,
                    status=ActionStatus.FAILED,
                    result=None,
                    error=error,
                )
            return self._action(connection, action_id)

        with self._errors():
            return self._write(work)

    def release(self, action_id: int, token: str, note: str) -> Action:
        """Give a claimed action back because the agent is stopping, not because it failed:
        pending again at once, without using up an attempt. LeaseLost when the claim was taken
        back."""

        def work(connection: Connection) -> Action:
            row = lease.locked(connection, self.tables, action_id, token)
            lease.release(connection, self.tables, row, token, note=note)
            return self._action(connection, action_id)

        with self._errors():
            return self._write(work)

    def reap(self, project: str | None = None) -> int:
        """Take back actions whose lease expired (of one project, or all): pending again, or
        failed once their attempts are used up. How many were taken back."""
        total = 0
        with self._errors():
            while True:
                count = self._write(
                    lambda c: claiming.reap_expired(c, self.tables, project=project)
                )
                total += count
                if count < claiming.REAP_BATCH:
                    return total

    def record_agent(self, project: str, agent: str) -> None:
        """Remember that ``agent`` of ``project`` was seen now."""
        text_field("project", project, 64)
        text_field("agent", agent, 255)
        g = self.tables.agents
        touch = (
            g.update().where(g.c.project == project, g.c.agent == agent).values(last_seen=utcnow())
        )
        add = g.insert().values(project=project, agent=agent, last_seen=utcnow())
        with self._errors():
            # Portable upsert: most calls find the row; the first one inserts, and when two
            # agents race to insert, the loser's UPDATE finds the winner's row.
            if self._write(lambda c: c.execute(touch).rowcount) == 1:
                return
            try:
                self._write(lambda c: c.execute(add))
            except IntegrityError:
                self._write(lambda c: c.execute(touch))

    def agents_last_seen(self) -> dict[str, datetime]:
        """Project → when any of its agents was last seen."""
        g = self.tables.agents
        query = sa.select(g.c.project, sa.func.max(g.c.last_seen)).group_by(g.c.project)
        with self._errors():
            rows = self._read(lambda c: c.execute(query).all())
        return {project: to_utc(seen) for project, seen in rows}

"""The spool: the table of actions waiting for agents, and every operation on it.

The dashboard, API and CLI only ever ``submit``, ``list``, ``get`` and ``cancel``; agents
``claim`` their project's actions and finish them through the fenced operations
(:mod:`failboard.spool.agents`). Time always comes from the database clock
(``failboard.db.utcnow``), never from the caller's.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from failboard.audit import AuditEvent
from failboard.db import utcnow
from failboard.exceptions import ActionConflict, InvalidRequest
from failboard.models import Action, ActionKind, ActionStatus, to_utc
from failboard.spool.agents import AgentOperations
from failboard.spool.params import parse_kind, text_field, validate_params
from failboard.spool.records import Event, EventKind, dumps, to_action, to_event, write_events

__all__ = ["Spool"]

OPEN = (ActionStatus.PENDING.value, ActionStatus.PROCESSING.value)
FINISHED = tuple(status.value for status in ActionStatus if status.finished)
MAX_LIMIT = 1000
OPEN_SCAN = 500
"""open_actions_for_jobs reads at most this many open actions of a project (newest first)."""


class Spool(AgentOperations):
    """The action spool in one SQL database (PostgreSQL, MySQL/MariaDB or SQLite).

    ``Spool(url, lease_seconds=60, max_attempts=3, retry_delay_seconds=10,
    table_prefix="failboard_", timeout=10.0)``, or ``Spool.from_settings(settings.spool)``.
    Thread-safe: each call takes its own connection from the engine's pool. Database failures
    come out as :class:`~failboard.exceptions.SpoolError` naming the redacted URL.
    """

    def submit(
        self,
        project: str,
        action: ActionKind | str,
        params: Mapping[str, Any],
        *,
        requested_by: str | None = None,
        idempotency_key: str | None = None,
    ) -> Action:
        """Queue an action for ``project``'s agent. InvalidRequest names the bad field.

        The same ``idempotency_key`` again returns the first action (a double click makes one
        row); the key reused for another project or action is an ActionConflict.
        """
        kind = parse_kind(action)
        project = str(text_field("project", project, 64))
        requested_by = text_field("requested_by", requested_by, 255, optional=True)
        key = text_field("idempotency_key", idempotency_key, 128, optional=True)
        checked = validate_params(kind, params, None)
        with self._errors():
            if key is not None:
                existing = self._read(lambda c: self._by_key(c, key))
                if existing is not None:
                    return _same_request(existing, project, kind)
            try:
                return self._write(
                    lambda c: self._insert(c, project, kind, checked, requested_by, key)
                )
            except IntegrityError:
                # Two submits with one key raced and the other won: its row is the answer.
                existing = None if key is None else self._read(lambda c: self._by_key(c, key))
                if existing is None:
                    raise
                return _same_request(existing, project, kind)

    def _by_key(self, connection: Connection, key: str) -> Action | None:
        a = self.tables.actions
        row = connection.execute(sa.select(a).where(a.c.idempotency_key == key)).mappings().first()
        return None if row is None else to_action(row)

    def _insert(
        self,
        connection: Connection,
        project: str,
        kind: ActionKind,
        params: dict[str, Any],
        requested_by: str | None,
        key: str | None,
    ) -> Action:
        if kind is ActionKind.RETRY_QUEUE and params["failed_before"] is None:
            now = connection.execute(sa.select(utcnow())).scalar_one()
            params = validate_params(kind, {**params, "failed_before": None}, to_utc(now))
        inserted = connection.execute(
            self.tables.actions.insert().values(
                project=project,
                action=kind.value,
                params=dumps(params),
                status=ActionStatus.PENDING.value,
                requested_by=requested_by,
                idempotency_key=key,
                created_at=utcnow(),
                updated_at=utcnow(),
                available_at=utcnow(),
                attempts=0,
                max_attempts=self.max_attempts,
                progress_done=0,
            )
        )
        key_row = inserted.inserted_primary_key
        assert key_row is not None  # a single-row INSERT always reports its key
        action_id = int(key_row[0])
        detail = {"action": kind.value, "idempotency_key": key}
        write_events(
            connection, self.tables, EventKind.SUBMITTED, requested_by, project, {action_id: detail}
        )
        return self._action(connection, action_id)

    def get(self, action_id: int) -> Action:
        """One action; NotFound when there is no such action."""
        with self._errors():
            return self._read(lambda c: self._action(c, action_id))

    def list(
        self,
        *,
        project: str | Sequence[str] | None = None,
        status: ActionStatus | str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> builtins.list[Action]:
        """Actions newest first; ``before_id`` pages on (ids strictly below it)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit: must be 1 to {MAX_LIMIT}")
        a = self.tables.actions
        query = sa.select(a).order_by(a.c.id.desc()).limit(limit)
        if isinstance(project, str):
            query = query.where(a.c.project == project)
        elif project is not None:
            if not project:
                return []
            query = query.where(a.c.project.in_(builtins.list(project)))
        if status is not None:
            query = query.where(a.c.status == _status(status).value)
        if before_id is not None:
            query = query.where(a.c.id < before_id)
        with self._errors():
            rows = self._read(lambda c: c.execute(query).mappings().all())
        return [to_action(row) for row in rows]

    def cancel(self, action_id: int, *, by: str | None = None) -> Action:
        """Cancel a pending action; ActionConflict once an agent claimed it (or it ended)."""
        a = self.tables.actions

        def work(connection: Connection) -> Action:
            changed = connection.execute(
                a.update()
                .where(a.c.id == action_id, a.c.status == ActionStatus.PENDING.value)
                .values(
                    status=ActionStatus.CANCELLED.value,
                    finished_at=utcnow(),
                    updated_at=utcnow(),
                )
            ).rowcount
            if changed != 1:
                current = self._action(connection, action_id)  # NotFound if there is none
                raise ActionConflict(
                    f"action {action_id} is {current.status.value}: only a pending action "
                    "can be cancelled"
                )
            cancelled = self._action(connection, action_id)
            write_events(
                connection, self.tables, EventKind.CANCELLED, by, cancelled.project, {action_id: {}}
            )
            return cancelled

        with self._errors():
            return self._write(work)

    def prune_finished(self, older_than: timedelta, *, by: str | None = None) -> int:
        """Delete actions that ended more than ``older_than`` ago; how many. Their events and
        audit entries stay: the trail is append-only (the prune itself is an audit entry)."""
        seconds = older_than.total_seconds()
        if not math.isfinite(seconds) or seconds < 0:
            raise InvalidRequest("older_than: must not be negative")
        a = self.tables.actions
        statement = a.delete().where(
            a.c.status.in_(FINISHED), a.c.finished_at < utcnow(-int(seconds))
        )

        def work(connection: Connection) -> int:
            count = int(connection.execute(statement).rowcount)
            if count:
                self.audit.record(
                    connection,
                    AuditEvent.SPOOL_PRUNED,
                    actor=by,
                    detail={"deleted": count, "older_than_seconds": int(seconds)},
                )
            return count

        with self._errors():
            return self._write(work)

    def events(self, action_id: int) -> builtins.list[Event]:
        """The audit trail of one action, oldest first (still there after the action is pruned)."""
        e = self.tables.events
        query = sa.select(e).where(e.c.action_id == action_id).order_by(e.c.id)
        with self._errors():
            rows = self._read(lambda c: c.execute(query).mappings().all())
        return [to_event(row) for row in rows]

    def open_counts(self) -> dict[str, int]:
        """Project → number of its pending and processing actions."""
        a = self.tables.actions
        query = (
            sa.select(a.c.project, sa.func.count())
            .where(a.c.status.in_(OPEN))
            .group_by(a.c.project)
        )
        with self._errors():
            rows = self._read(lambda c: c.execute(query).all())
        return {project: int(count) for project, count in rows}

    def action_counts(self) -> dict[tuple[str, str, str], int]:
        """(project, action, status) → how many actions the spool holds (for /metrics)."""
        a = self.tables.actions
        query = sa.select(a.c.project, a.c.action, a.c.status, sa.func.count()).group_by(
            a.c.project, a.c.action, a.c.status
        )
        with self._errors():
            rows = self._read(lambda c: c.execute(query).all())
        return {(str(p), str(k), str(s)): int(n) for p, k, s, n in rows}

    def open_actions_for_jobs(self, project: str, job_ids: Sequence[str]) -> dict[str, Action]:
        """Job id → the open (pending or processing) retry/delete action that names it, so that
        the UI does not offer to retry a job twice. Scans the newest ``OPEN_SCAN`` open actions."""
        wanted = set(job_ids)
        if not wanted:
            return {}
        a = self.tables.actions
        query = (
            sa.select(a)
            .where(
                a.c.project == project,
                a.c.status.in_(OPEN),
                a.c.action.in_((ActionKind.RETRY.value, ActionKind.DELETE.value)),
            )
            .order_by(a.c.id.desc())
            .limit(OPEN_SCAN)
        )
        with self._errors():
            rows = self._read(lambda c: c.execute(query).mappings().all())
        found: dict[str, Action] = {}
        for row in rows:
            action = to_action(row)
            for job_id in action.params.get("job_ids", ()):
                if job_id in wanted:
                    found.setdefault(job_id, action)
        return found


def _status(value: ActionStatus | str) -> ActionStatus:
    try:
        return ActionStatus(value)
    except ValueError:
        known = ", ".join(status.value for status in ActionStatus)
        raise InvalidRequest(f"status: unknown status {value!r}; use one of {known}") from None


def _same_request(existing: Action, project: str, kind: ActionKind) -> Action:
    if existing.project != project or existing.action is not kind:
        raise ActionConflict(
            f"idempotency_key: already used for action {existing.id} "
            f"({existing.action.value} on {existing.project}); use a new key"
        )
    return existing

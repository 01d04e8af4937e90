"""The dashboards' shared state, in the spool database: ended sessions, sign-in failures and
frozen selections.

Several dashboards behind one load balancer must agree on three things a request on one of
them can change: that a session was signed out, how many sign-ins failed for a name or an
address, and which "select all matching" was clicked (and whether it was already confirmed).
The spool is the database they all share already, so it holds these too (tables in
``failboard.spool.schema``, migration 0003). This module is only the SQL: the web objects that
use it (web/sessions.py, web/throttle.py, web/selections.py) own the clock, the in-process
fallback and the meaning.

Every id, name and address is stored as its sha256 hex digest: the tables name no live cookie,
user or client. Times are naive UTC, like the rest of the spool. Expired rows are purged a
bounded batch at a time on writes, never by a scan on a read.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from failboard.exceptions import SpoolError
from failboard.spool.base import SpoolBase

__all__ = ["Clock", "Outage", "SharedState", "digest", "utc_now"]

log = logging.getLogger("failboard.web")


Clock = Callable[[], datetime]
"""Wall time as an aware UTC datetime: the shared rows are compared across processes, so a
monotonic clock (which means nothing outside its process) will not do."""

PURGE_BATCH = 100
"""Expired rows deleted per write at most: a write is never held by a backlog, and at one row
written per request the purge still outpaces the growth."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _naive(moment: datetime) -> datetime:
    # The spool's DATETIME columns hold naive UTC; an aware value bound on PostgreSQL would be
    # shifted by the session's time zone.
    return moment.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class SharedState:
    """The three shared tables of one spool. Thread-safe (a connection per call); database
    failures come out as :class:`SpoolError`."""

    def __init__(self, spool: SpoolBase) -> None:
        self.tables = spool.tables
        # The spool's own transactions: BEGIN IMMEDIATE on SQLite, retried on a deadlock,
        # errors as SpoolError.
        self._write = spool.write
        self._read = spool.read

    @staticmethod
    def _purge(
        connection: Connection,
        table: sa.Table,
        key: sa.Column[Any],
        dead: sa.ColumnElement[bool],
    ) -> None:
        """Delete at most PURGE_BATCH rows matching ``dead``. Keys first, then a DELETE by key:
        MySQL can neither LIMIT a DELETE's IN subquery nor read the table it deletes from, and
        PostgreSQL has no DELETE ... LIMIT."""
        found = connection.execute(sa.select(key).where(dead).limit(PURGE_BATCH)).scalars().all()
        if found:
            connection.execute(table.delete().where(key.in_(found)))

    # -- ended sessions -------------------------------------------------------------------------

    def end_session(self, sid: str, expires: datetime, now: datetime) -> None:
        """Remember that ``sid`` was signed out, until ``expires`` (when its cookie dies)."""
        t = self.tables.ended_sessions

        def work(connection: Connection) -> None:
            self._purge(connection, t, t.c.sid, t.c.expires_at < _naive(now))
            connection.execute(t.insert().values(sid=digest(sid), expires_at=_naive(expires)))

        try:
            self._write(work)
        except SpoolError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise  # else: ended already (two tabs signing out at once)

    def session_ended(self, sid: str) -> bool:
        """One primary-key lookup: it runs on every signed-in request."""
        t = self.tables.ended_sessions
        query = sa.select(sa.literal(1)).where(t.c.sid == digest(sid))
        return self._read(lambda c: c.execute(query).first() is not None)

    # -- sign-in failures -----------------------------------------------------------------------

    def record_failure(self, scope: str, subject: str, at: datetime, keep_after: datetime) -> None:
        """One failed sign-in of ``subject``; failures at or before ``keep_after`` are dead."""
        t = self.tables.login_failures

        def work(connection: Connection) -> None:
            self._purge(connection, t, t.c.id, t.c.at <= _naive(keep_after))
            connection.execute(
                t.insert().values(scope=scope, subject=digest(subject), at=_naive(at))
            )

        self._write(work)

    def failures(self, scope: str, subject: str, after: datetime) -> tuple[int, datetime | None]:
        """How many failures of ``subject`` came after ``after``, and the oldest of them: one
        indexed COUNT/MIN over (scope, subject, at)."""
        t = self.tables.login_failures
        query = sa.select(sa.func.count(), sa.func.min(t.c.at)).where(
            t.c.scope == scope, t.c.subject == digest(subject), t.c.at > _naive(after)
        )
        count, oldest = self._read(lambda c: c.execute(query).one())
        return int(count), None if oldest is None else _aware(oldest)

    def forgive(self, scope: str, subject: str) -> None:
        t = self.tables.login_failures
        query = t.delete().where(t.c.scope == scope, t.c.subject == digest(subject))
        self._write(lambda c: c.execute(query))

    # -- frozen selections ----------------------------------------------------------------------

    def keep_selection(
        self, key: str, session: str, body: str, now: datetime, expires: datetime
    ) -> None:
        t = self.tables.selections

        def work(connection: Connection) -> None:
            self._purge(connection, t, t.c.id, t.c.expires_at < _naive(now))
            connection.execute(
                t.insert().values(
                    id=digest(key),
                    session=digest(session),
                    created_at=_naive(now),
                    expires_at=_naive(expires),
                    body=body,
                )
            )

        self._write(work)

    def take_selection(self, key: str, session: str, now: datetime) -> str | None:
        """The body, once: the conditional UPDATE is what two dashboards confirming the same
        selection race for, and only one of them changes the row (the other waits for its lock,
        then finds ``taken_at`` set). None when taken, expired, another session's, or unknown."""
        t = self.tables.selections
        mark = (
            t.update()
            .where(
                t.c.id == digest(key),
                t.c.session == digest(session),
                t.c.taken_at.is_(None),
                t.c.expires_at > _naive(now),
            )
            .values(taken_at=_naive(now))
        )

        def work(connection: Connection) -> str | None:
            if connection.execute(mark).rowcount != 1:
                return None
            body = connection.execute(sa.select(t.c.body).where(t.c.id == digest(key))).scalar()
            return None if body is None else str(body)

        return self._write(work)


class Outage:
    """Remembers that the spool stopped answering, for the callers that fall back to this
    process's memory: it logs the outage once (not once per request) and its end, and for
    ``pause`` seconds after a failure tells readers to skip the spool — a spool that hangs
    instead of refusing would otherwise hold every signed-in request for the connect timeout."""

    def __init__(self, what: str, pause: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.what = what
        self.pause = pause
        self.clock = clock
        self._since: float | None = None
        self._lock = threading.Lock()

    def skipping(self) -> bool:
        with self._lock:
            return self._since is not None and self.clock() - self._since < self.pause

    def failed(self, exc: SpoolError) -> None:
        with self._lock:
            first = self._since is None
            self._since = self.clock()
        if first:
            message = "%s: the spool cannot answer, using this process's memory: %s"
            log.warning(message, self.what, exc)

    def answered(self) -> None:
        with self._lock:
            back = self._since is not None
            self._since = None
        if back:
            log.warning("%s: the spool answers again", self.what)

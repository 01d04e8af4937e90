"""The ground every spool operation stands on: engine, tables, transactions and the schema."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, RowMapping, event
from sqlalchemy.exc import DisconnectionError

from failboard.audit import AuditLog
from failboard.config import SpoolSettings
from failboard.db import create_engine, immediate, redact_url, utcnow
from failboard.exceptions import ConfigError, NotFound, SpoolError
from failboard.models import Action, to_utc
from failboard.spool import migrate
from failboard.spool.errors import retrying, spool_errors
from failboard.spool.records import to_action
from failboard.spool.schema import PREFIX, tables

__all__ = ["SpoolBase"]

log = logging.getLogger("failboard.spool")

T = TypeVar("T")

_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb")


STATEMENT_TIMEOUT_SECONDS = 120
"""No spool statement should take long; a migration of a huge spool table is the slowest."""

IDLE_PING_SECONDS = 2.0
"""A pooled spool connection is tested before use only after lying idle this long."""


class SpoolBase:
    """What every spool operation stands on: the engine, the tables, transactions, the schema."""

    def __init__(
        self,
        url: str,
        *,
        lease_seconds: int = 60,
        max_attempts: int = 3,
        retry_delay_seconds: int = 10,
        table_prefix: str = "failboard_",
        timeout: float | None = 10.0,
    ) -> None:
        # The config enforces production bounds (a lease of at least 5 s); tests may go lower.
        if lease_seconds < 1:
            raise ConfigError("spool: lease_seconds must be at least 1")
        if max_attempts < 1:
            raise ConfigError("spool: max_attempts must be at least 1")
        if retry_delay_seconds < 0:
            raise ConfigError("spool: retry_delay_seconds must not be negative")
        if not PREFIX.match(table_prefix):
            raise ConfigError(f"spool: table_prefix {table_prefix!r} must match {PREFIX.pattern}")
        self.url = url
        self.lease_seconds = int(lease_seconds)
        self.max_attempts = int(max_attempts)
        self.retry_delay_seconds = int(retry_delay_seconds)
        self.table_prefix = table_prefix
        self.tables = tables(table_prefix)
        # A statement timeout too, so a silently dropped connection cannot hang an agent forever
        # (its lease runs out meanwhile and another agent takes the action back).
        self.engine: Engine = create_engine(
            url,
            timeout=timeout,
            statement_timeout=STATEMENT_TIMEOUT_SECONDS,
            what="spool",
            pre_ping=False,
        )
        _ping_when_idle(self.engine)
        if self.engine.dialect.name not in _DIALECTS:
            self.engine.dispose()
            raise ConfigError(
                f"spool: {redact_url(url)}: the spool runs on PostgreSQL, MySQL/MariaDB or SQLite"
            )
        if self.engine.dialect.name in ("mysql", "mariadb"):
            _read_committed(self.engine)
        self.audit = AuditLog(self.engine, self.tables, url)
        """The hash-chained audit log in the same database (every transition writes to it)."""

    @classmethod
    def from_settings(cls, settings: SpoolSettings) -> Self:
        """The spool that ``[spool]`` of failboard.toml describes."""
        return cls(
            settings.url,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
            retry_delay_seconds=settings.retry_delay_seconds,
            table_prefix=settings.table_prefix,
        )

    def __repr__(self) -> str:
        return f"Spool({redact_url(self.url)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    # -- plumbing -------------------------------------------------------------------------------

    def _errors(self) -> AbstractContextManager[None]:
        return spool_errors(self.url)

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction (``BEGIN IMMEDIATE`` on SQLite), again on a
        deadlock. The caller translates errors."""

        def attempt() -> T:
            with immediate(self.engine) as connection:
                return work(connection)

        return retrying(attempt)

    def _read(self, work: Callable[[Connection], T]) -> T:
        with self.engine.connect() as connection:
            return work(connection)

    def write(self, work: Callable[[Connection], T]) -> T:
        """:meth:`_write` with errors as SpoolError: for what other modules keep in the spool's
        database (the dashboards' shared state, web/shared.py)."""
        with self._errors():
            return self._write(work)

    def read(self, work: Callable[[Connection], T]) -> T:
        """:meth:`_read` with errors as SpoolError."""
        with self._errors():
            return self._read(work)

    def _row(self, connection: Connection, action_id: int) -> RowMapping | None:
        a = self.tables.actions
        return connection.execute(sa.select(a).where(a.c.id == action_id)).mappings().first()

    def _action(self, connection: Connection, action_id: int) -> Action:
        row = self._row(connection, action_id)
        if row is None:
            raise NotFound(f"action {action_id} not found")
        return to_action(row)

    # -- schema ---------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the spool's tables (Alembic ``upgrade head``); idempotent, and safe
        when several processes run it at once."""
        with self._errors():
            migrate.upgrade(self.engine, self.table_prefix)

    def current_revision(self) -> str | None:
        """The schema revision of the database; None before the first ``migrate``."""
        with self._errors():
            return migrate.current_revision(self.engine, self.table_prefix)

    def ensure_ready(self, *, agent: bool = False) -> None:
        """Raise SpoolError unless the schema is at the revision this code expects.

        The dashboard needs the newest revision it knows, exactly. An ``agent`` needs only
        :data:`~failboard.spool.migrate.AGENT_NEEDS` or later, and runs on a schema a newer
        failboard migrated (with a warning): in a fleet of projects, agents are upgraded one
        project at a time, and a restart between a ``failboard migrate`` and the agent's own
        upgrade must not keep an agent down. Spool migrations therefore never change what
        agents read or write in a way older agents would get wrong."""
        current = self.current_revision()
        head = migrate.head_revision(self.table_prefix)
        if current == head:
            return
        where = f"(spool: {redact_url(self.url)})"
        if current is None:
            raise SpoolError(f"spool schema is missing: run `failboard migrate` {where}")
        if not migrate.is_known(current, self.table_prefix):
            if agent:
                log.warning(
                    "spool schema is at revision %s, newer than this failboard knows (%s): the "
                    "agent runs on it; upgrade failboard here when you can %s",
                    current,
                    head,
                    where,
                )
                return
            raise SpoolError(
                f"spool schema is at revision {current}, which this failboard does not know "
                f"(did a newer version migrate it?): upgrade failboard {where}"
            )
        needs = migrate.AGENT_NEEDS if agent else head
        if migrate.KNOWN.index(current) >= migrate.KNOWN.index(needs):
            return
        raise SpoolError(
            f"spool schema is outdated (revision {current}, expected {needs}"
            f"{' or later' if agent else ''}): run `failboard migrate` {where}"
        )

    def now(self) -> datetime:
        """The database's clock, as an aware UTC datetime."""
        with self._errors():
            return to_utc(self._read(lambda c: c.execute(sa.select(utcnow())).scalar_one()))


def _ping_when_idle(engine: Engine) -> None:
    # pool_pre_ping costs a round trip on every checkout: 4 of an agent's ~23 round trips per
    # one-job action. A connection in steady use is known to be alive; one that lay idle (an
    # agent polling an empty spool, the dashboard between requests) is what a restarted server
    # or a firewall's idle timeout leaves dead, so only that one is pinged, and replaced if the
    # ping fails (DisconnectionError makes the pool reconnect). A connection that dies while in
    # use fails its statement, which SQLAlchemy turns into invalidating the whole pool; the
    # spool call raises SpoolError and the agent retries it (docs/reliability.md, guarantee 7).
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["failboard_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("failboard_idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"spool connection dead after idling: {exc}") from exc
        if not alive:
            raise DisconnectionError("spool connection dead after idling")


def _read_committed(engine: Engine) -> None:
    # InnoDB's default REPEATABLE READ takes gap locks in SELECT ... FOR UPDATE, which makes
    # concurrent claimers and submitters deadlock; READ COMMITTED locks only the rows it returns.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cursor.close()

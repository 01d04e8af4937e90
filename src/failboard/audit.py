"""The audit log: append-only, hash-chained entries in the spool database.

Every entry carries the hash of the one before it; its own hash is sha256 over a canonical
serialisation of its fields and that previous hash (:func:`entry_hash`). Editing, deleting or
inserting an entry breaks the chain at that point, and :meth:`AuditLog.verify` names the first
entry where it breaks.

Appends are serialised by a one-row head table (the newest id and hash) locked inside the
transaction of the change being recorded — row-locked by one statement that also writes the
entry on PostgreSQL (the hash computed by the server), by an ``UPDATE`` on MariaDB, and by the
write lock ``BEGIN IMMEDIATE`` already holds on SQLite — so a spool change and its entry commit
together or not at all, and concurrent writers never fork the chain. The head is the last lock
such a transaction takes and is held for one or two round trips and the commit: that is the
only part of the spool's work that runs one at a time.

What it does not do: anyone who can write the tables (a database superuser) can rewrite the whole
chain from the first changed entry on. Ship the head hash off the box (``failboard audit verify``
prints it) to catch that; see docs/audit.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, RowMapping

from failboard.audit_append import append, entry_hash
from failboard.db import immediate
from failboard.exceptions import SpoolError
from failboard.models import UtcDateTime, to_utc

if TYPE_CHECKING:
    from failboard.spool.schema import Tables

__all__ = [
    "GENESIS",
    "AuditEvent",
    "AuditLog",
    "Entry",
    "VerifyResult",
    "canonical_detail",
    "entry_hash",
    "record",
]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""
MAX_DETAIL_TEXT = 500
"""Free text inside details (errors, notes) is clipped: the log records what happened, not logs."""


class AuditEvent:
    """The events the log records."""

    ACTION_REQUESTED = "action.requested"
    ACTION_CANCELLED = "action.cancelled"
    ACTION_CLAIMED = "action.claimed"
    ACTION_COMPLETED = "action.completed"
    ACTION_FAILED = "action.failed"
    ACTION_RETRY_SCHEDULED = "action.retry_scheduled"
    ACTION_RELEASED = "action.released"
    ACTION_REAPED = "action.reaped"
    SPOOL_PRUNED = "spool.pruned"
    AUTH_SIGNIN = "auth.signin"
    AUTH_SIGNIN_FAILED = "auth.signin_failed"
    AUTH_SIGNOUT = "auth.signout"


class Entry(BaseModel):
    """One entry of the audit log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    at: UtcDateTime
    actor: str | None
    event: str
    project: str | None
    action_id: int | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :meth:`AuditLog.verify`. ``bad_id`` and ``problem`` name the first entry
    where the chain breaks (None when it holds)."""

    ok: bool
    checked: int
    head_id: int
    head_hash: str
    bad_id: int | None = None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head_id": self.head_id,
            "head_hash": self.head_hash,
            "bad_id": self.bad_id,
            "problem": self.problem,
        }


def canonical_detail(detail: Mapping[str, Any] | None) -> str:
    """The stored (and hashed) text of a detail: sorted keys, no spaces, UTF-8 as is."""
    return json.dumps(
        dict(detail or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def record(
    connection: Connection,
    tables: Tables,
    event: str,
    *,
    actor: str | None = None,
    project: str | None = None,
    action_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> int:
    """Append one entry inside the caller's transaction; its id.

    On SQLite the transaction must hold the write lock (``failboard.db.immediate``), as every
    spool write does. Call it as the LAST statement of the transaction: the head stays locked
    until the commit, and every other audited transition of every agent waits for it.
    """
    fields: dict[str, Any] = {
        "actor": None if actor is None else str(actor)[:255],
        "event": event,
        "project": project,
        "action_id": action_id,
        "detail": canonical_detail(detail),
    }
    return append(connection, tables, fields)


def _entry(row: RowMapping) -> Entry:
    detail = json.loads(row["detail"]) if row["detail"] else {}
    return Entry(
        id=row["id"],
        at=to_utc(row["at"]),
        actor=row["actor"],
        event=row["event"],
        project=row["project"],
        action_id=row["action_id"],
        detail=detail if isinstance(detail, dict) else {"value": detail},
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class AuditLog:
    """The audit log of one spool database (``spool.audit``)."""

    def __init__(self, engine: Engine, tables: Tables, url: str) -> None:
        self.engine = engine
        self.tables = tables
        self.url = url

    def record(
        self,
        connection: Connection,
        event: str,
        *,
        actor: str | None = None,
        project: str | None = None,
        action_id: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an entry inside the caller's transaction (see :func:`record`)."""
        return record(
            connection,
            self.tables,
            event,
            actor=actor,
            project=project,
            action_id=action_id,
            detail=detail,
        )

    def append(
        self,
        event: str,
        *,
        actor: str | None = None,
        project: str | None = None,
        action_id: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an entry in a transaction of its own (sign-ins and the like); its id."""

        def attempt() -> int:
            with immediate(self.engine) as connection:
                return self.record(
                    connection,
                    event,
                    actor=actor,
                    project=project,
                    action_id=action_id,
                    detail=detail,
                )

        with self._errors():
            return _retrying(attempt)

    def _errors(self) -> AbstractContextManager[None]:
        # Imported here: failboard.spool imports this module (every transition records an entry).
        from failboard.spool.errors import spool_errors

        return spool_errors(self.url)

    def head(self) -> tuple[int, str]:
        """The newest entry's id and hash (0 and GENESIS while the log is empty)."""
        h = self.tables.audit_head
        with self._errors(), self.engine.connect() as connection:
            row = connection.execute(sa.select(h.c.last_id, h.c.hash).where(h.c.id == 1)).first()
        if row is None:
            raise SpoolError("the audit log's head row is missing: run `failboard migrate`")
        return int(row.last_id), str(row.hash)

    def get(self, entry_id: int) -> Entry | None:
        """One entry, or None."""
        log = self.tables.audit
        with self._errors(), self.engine.connect() as connection:
            row = connection.execute(sa.select(log).where(log.c.id == entry_id)).mappings().first()
        return None if row is None else _entry(row)

    def entries(
        self,
        *,
        limit: int = 50,
        before_id: int | None = None,
        project: str | None = None,
        action_id: int | None = None,
        event: str | None = None,
    ) -> list[Entry]:
        """Entries newest first; ``before_id`` pages on. Entries of a batch (a claim or reap of
        several actions) have no ``action_id``: they list the actions in ``detail.actions``."""
        log = self.tables.audit
        query = sa.select(log).order_by(log.c.id.desc()).limit(max(1, min(limit, 10_000)))
        if before_id is not None:
            query = query.where(log.c.id < before_id)
        if project is not None:
            query = query.where(log.c.project == project)
        if action_id is not None:
            query = query.where(log.c.action_id == action_id)
        if event is not None:
            query = query.where(log.c.event == event)
        with self._errors(), self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [_entry(row) for row in rows]

    def verify(self, page: int = 2_000) -> VerifyResult:
        """Walk the chain oldest first; the first entry that was deleted, edited or inserted."""
        head_id, head_hash = self.head()
        checked = 0
        expected_id, prev = 1, GENESIS
        for row in self._rows(page):
            found = int(row["id"])
            bad = _check(row, expected_id, prev)
            if bad is not None:
                return VerifyResult(False, checked, head_id, head_hash, bad[0], bad[1])
            checked += 1
            expected_id, prev = found + 1, str(row["hash"])
        last = expected_id - 1
        if last != head_id or prev != head_hash:
            if last < head_id:
                problem = f"{_missing(last + 1, head_id)} (deleted at the end?)"
                return VerifyResult(False, checked, head_id, head_hash, last + 1, problem)
            problem = (
                f"the head says entry {head_id} ({head_hash[:12]}…) is the newest, but the log "
                f"ends at entry {last} ({prev[:12]}…): entries inserted or head changed"
            )
            return VerifyResult(False, checked, head_id, head_hash, head_id + 1, problem)
        return VerifyResult(True, checked, head_id, head_hash)

    def _rows(self, page: int) -> Iterator[RowMapping]:
        log = self.tables.audit
        after = 0
        with self._errors(), self.engine.connect() as connection:
            while True:
                query = sa.select(log).where(log.c.id > after).order_by(log.c.id).limit(page)
                rows = connection.execute(query).mappings().all()
                yield from rows
                if len(rows) < page:
                    return
                after = int(rows[-1]["id"])


def _retrying(work: Callable[[], int]) -> int:
    from failboard.spool.errors import retrying

    return retrying(work)


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"entry {first} is missing"
    return f"entries {first} to {last} are missing"


def _check(row: RowMapping, expected_id: int, prev: str) -> tuple[int, str] | None:
    """Why ``row`` breaks the chain (its id, the reason), or None."""
    found = int(row["id"])
    if found > expected_id:
        gone = _missing(expected_id, found - 1)
        return expected_id, f"{gone} (deleted?); the log goes on at entry {found}"
    if found < expected_id:  # cannot happen with a primary key; a renumbered copy, maybe
        return found, f"entry {found} appears out of order"
    if row["prev_hash"] != prev:
        return found, (
            f"entry {found}: prev_hash {str(row['prev_hash'])[:12]}… does not match the hash of "
            f"the entry before it ({prev[:12]}…): an entry was inserted or replaced"
        )
    computed = entry_hash(
        id=found,
        at=row["at"],
        actor=row["actor"],
        event=row["event"],
        project=row["project"],
        action_id=row["action_id"],
        detail=row["detail"],
        prev_hash=row["prev_hash"],
    )
    if computed != row["hash"]:
        return found, (
            f"entry {found}: its content does not match its hash (stored {str(row['hash'])[:12]}…,"
            f" computed {computed[:12]}…): the entry was edited"
        )
    return None

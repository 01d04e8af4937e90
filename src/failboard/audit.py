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

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, RowMapping

from failboard.db import immediate, utcnow
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
FORMAT = "failboard-audit-1"
"""Part of every hashed message: a later format change cannot be confused with this one."""
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


def _stamp(at: datetime) -> str:
    # Naive values are UTC already (the spool stores naive UTC); microseconds are what every
    # supported database keeps, so the text is the same before storing and after reading back.
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *,
    id: int,
    at: datetime,
    actor: str | None,
    event: str,
    project: str | None,
    action_id: int | None,
    detail: str,
    prev_hash: str,
) -> str:
    """sha256 (hex) over the JSON array of the entry's fields and the previous hash: an
    unambiguous serialisation (no field can run into the next)."""
    message = json.dumps(
        [FORMAT, id, _stamp(at), actor, event, project, action_id, detail, prev_hash],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(message.encode("utf-8")).hexdigest()


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
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return _record_pg(connection, tables, fields)
    if dialect in ("mysql", "mariadb"):
        return _record_mysql(connection, tables, fields)
    return _record_locked(connection, tables, fields)


def _message_parts(fields: Mapping[str, Any]) -> tuple[str, str]:
    """The hashed message of :func:`entry_hash` around the three values only the head knows
    (id, at, prev_hash): ``prefix + id + ',"' + stamp + '",' + middle + ',"' + prev + '"]'``.
    json.dumps of a list is "[" + ",".join(items) + "]", so the pieces join to the same text."""
    prefix = json.dumps([FORMAT], ensure_ascii=False)[:-1] + ","
    named = ("actor", "event", "project", "action_id", "detail")
    middle = json.dumps(
        [fields[name] for name in named],
        separators=(",", ":"),
        ensure_ascii=False,
    )[1:-1]
    return prefix, middle


# The whole append as ONE statement, so that the head is locked for one round trip and the
# commit only (three round trips, with the agent's Python between them, were the critical
# section before; at load 10 on 2 cores each one can wait for a core while holding the chain).
# The hash is computed by the server over exactly the text entry_hash builds.
_PG_APPEND = """
WITH old AS (
    SELECT last_id, hash, (statement_timestamp() AT TIME ZONE 'UTC') AS at
    FROM {head} WHERE id = 1 FOR UPDATE
), new AS (
    SELECT last_id + 1 AS id, at, hash AS prev_hash,
        encode(sha256(convert_to(
            CAST(:prefix AS TEXT) || CAST(last_id + 1 AS TEXT) || ',"' || to_char(at, :stamp)
            || '",' || CAST(:middle AS TEXT) || ',"' || hash || '"]', 'UTF8')), 'hex') AS hash
    FROM old
), moved AS (
    UPDATE {head} SET last_id = new.id, hash = new.hash FROM new WHERE {head}.id = 1
    RETURNING new.id, new.at, new.prev_hash, new.hash
)
INSERT INTO {log} (id, at, actor, event, project, action_id, detail, prev_hash, hash)
SELECT id, at, CAST(:actor AS VARCHAR), CAST(:event AS VARCHAR), CAST(:project AS VARCHAR),
    CAST(:action_id AS BIGINT), CAST(:detail AS TEXT), prev_hash, hash
FROM moved
RETURNING id
"""
_PG_STAMP = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'

# MariaDB/MySQL: the UPDATE takes the head's lock and computes the new hash from the old one
# (SET assigns left to right, so ``hash`` sees the old ``last_id``; the old hash and the time
# are kept in session variables; the new id comes back as LAST_INSERT_ID), then the entry is
# copied from the head: two round trips.
_MYSQL_MOVE = """
UPDATE {head} SET
    hash = SHA2(CONCAT(:prefix, last_id + 1, ',"',
        DATE_FORMAT(@fb_audit_at := UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%fZ'),
        '",', :middle, ',"', @fb_audit_prev := hash, '"]'), 256),
    last_id = LAST_INSERT_ID(last_id + 1)
WHERE id = 1
"""
_MYSQL_COPY = """
INSERT INTO {log} (id, at, actor, event, project, action_id, detail, prev_hash, hash)
SELECT last_id, CAST(@fb_audit_at AS DATETIME(6)), :actor, :event, :project, :action_id,
    :detail, @fb_audit_prev, hash
FROM {head} WHERE id = 1
"""


def _record_pg(connection: Connection, tables: Tables, fields: Mapping[str, Any]) -> int:
    prefix, middle = _message_parts(fields)
    statement = sa.text(_PG_APPEND.format(head=tables.audit_head.name, log=tables.audit.name))
    found = connection.execute(
        statement, {**fields, "prefix": prefix, "middle": middle, "stamp": _PG_STAMP}
    ).scalar()
    if found is None:
        raise SpoolError("the audit log's head row is missing: run `failboard migrate`")
    return int(found)


def _record_mysql(connection: Connection, tables: Tables, fields: Mapping[str, Any]) -> int:
    prefix, middle = _message_parts(fields)
    names = {"head": tables.audit_head.name, "log": tables.audit.name}
    moved = connection.execute(
        sa.text(_MYSQL_MOVE.format(**names)), {"prefix": prefix, "middle": middle}
    )
    if moved.rowcount != 1:
        raise SpoolError("the audit log's head row is missing: run `failboard migrate`")
    entry_id = int(moved.lastrowid)
    connection.execute(sa.text(_MYSQL_COPY.format(**names)), dict(fields))
    return entry_id


def _record_locked(connection: Connection, tables: Tables, fields: Mapping[str, Any]) -> int:
    """The portable append (SQLite, under the write lock BEGIN IMMEDIATE holds): read the head,
    hash in Python, insert, move the head."""
    h, log = tables.audit_head, tables.audit
    head = connection.execute(
        sa.select(h.c.last_id, h.c.hash, utcnow().label("now")).where(h.c.id == 1).with_for_update()
    ).first()
    if head is None:
        raise SpoolError("the audit log's head row is missing: run `failboard migrate`")
    values: dict[str, Any] = {
        "id": int(head.last_id) + 1,
        "at": head.now,
        **fields,
        "prev_hash": head.hash,
    }
    values["hash"] = entry_hash(**values)
    connection.execute(log.insert().values(**values))
    connection.execute(
        h.update().where(h.c.id == 1).values(last_id=values["id"], hash=values["hash"])
    )
    return int(values["id"])


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

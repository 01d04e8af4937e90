"""Appending one entry to the audit chain, per dialect, and the hash that chains it.

Split from :mod:`failboard.audit` (the log, its reading and its verification), which calls
:func:`append` from ``record``. The append is the one part of the spool's work that runs one at
a time (the chain's head is locked), so each dialect does it in as few round trips as it can:
one statement on PostgreSQL (the hash computed by the server), two on MariaDB/MySQL, and the
portable read-hash-insert-move under SQLite's write lock. Every path hashes exactly the text
:func:`entry_hash` builds, so :meth:`failboard.audit.AuditLog.verify` checks them all alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from failboard.db import utcnow
from failboard.exceptions import SpoolError

if TYPE_CHECKING:
    from failboard.spool.schema import Tables

__all__ = ["FORMAT", "append", "entry_hash"]

FORMAT = "failboard-audit-1"
"""Part of every hashed message: a later format change cannot be confused with this one."""


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


def append(connection: Connection, tables: Tables, fields: Mapping[str, Any]) -> int:
    """Append one entry (``fields``: actor, event, project, action_id and the canonical
    detail) inside the caller's transaction, the dialect's way; its id."""
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

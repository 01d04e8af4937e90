"""The spool's tables as SQLAlchemy Core objects, for one table prefix.

The migrations under ``migrations/versions`` create these tables; this module only describes
them for queries. ``tests/integration/test_spool_migrate.py`` checks that the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

__all__ = ["DATETIME", "ID", "JSON_TEXT", "PREFIX", "Tables", "tables"]

PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
"""What a table prefix may look like (the same rule as ``SpoolSettings.table_prefix``)."""

# SQLite only makes an autoincrementing rowid alias of INTEGER PRIMARY KEY, not of BIGINT.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# MySQL's DATETIME drops fractions of a second unless asked; leases and ordering need them.
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# 10,000 job ids do not fit MySQL's 64 KB TEXT.
JSON_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


@dataclass(frozen=True)
class Tables:
    """The spool's tables and the name of its Alembic version table."""

    metadata: sa.MetaData
    actions: sa.Table
    events: sa.Table
    agents: sa.Table
    audit: sa.Table
    audit_head: sa.Table
    ended_sessions: sa.Table
    login_failures: sa.Table
    selections: sa.Table
    version_table: str


@lru_cache(maxsize=32)
def tables(prefix: str = "failboard_") -> Tables:
    """The spool's tables named with ``prefix`` (validated: it ends up in DDL)."""
    if not PREFIX.match(prefix):
        raise ValueError(f"table prefix {prefix!r} must match {PREFIX.pattern}")
    metadata = sa.MetaData()
    actions = sa.Table(
        f"{prefix}actions",
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("params", JSON_TEXT, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(255)),
        sa.Column("idempotency_key", sa.String(128)),
        sa.Column("created_at", DATETIME, nullable=False),
        sa.Column("updated_at", DATETIME, nullable=False),
        sa.Column("available_at", DATETIME, nullable=False),
        sa.Column("claimed_at", DATETIME),
        sa.Column("lease_until", DATETIME),
        sa.Column("heartbeat_at", DATETIME),
        sa.Column("finished_at", DATETIME),
        sa.Column("claim_token", sa.String(36)),
        sa.Column("claimed_by", sa.String(255)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("progress_done", sa.Integer, nullable=False),
        sa.Column("progress_total", sa.Integer),
        sa.Column("result", JSON_TEXT),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("idempotency_key", name=f"{prefix}actions_idempotency_key"),
        sa.Index(f"{prefix}actions_claim", "project", "status", "available_at", "id"),
        sa.Index(f"{prefix}actions_lease", "status", "lease_until"),
        sa.Index(f"{prefix}actions_finished", "status", "finished_at"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    events = sa.Table(
        f"{prefix}events",
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        # No foreign key on purpose: the audit trail outlives pruned actions.
        sa.Column("action_id", sa.BigInteger, nullable=False),
        sa.Column("at", DATETIME, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(255)),
        sa.Column("detail", JSON_TEXT),
        sa.Index(f"{prefix}events_action", "action_id", "id"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    agents = sa.Table(
        f"{prefix}agents",
        metadata,
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(255), primary_key=True),
        sa.Column("last_seen", DATETIME, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    # The hash-chained audit log (failboard.audit). Ids are assigned by the writer holding the
    # head row's lock, not by the database: consecutive, so a deleted entry leaves a visible gap.
    audit = sa.Table(
        f"{prefix}audit",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", DATETIME, nullable=False),
        sa.Column("actor", sa.String(255)),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64)),
        sa.Column("action_id", sa.BigInteger),
        sa.Column("detail", JSON_TEXT, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Index(f"{prefix}audit_action", "action_id"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    # One row (id = 1): the newest entry's id and hash. Every append locks it, which serialises
    # the chain across concurrent writers.
    audit_head = sa.Table(
        f"{prefix}audit_head",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_id", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    # The dashboards' shared state (failboard.web.shared): what one dashboard must know of what
    # another did. Session ids, names and addresses are stored as sha256 digests only.
    ended_sessions = sa.Table(
        f"{prefix}ended_sessions",
        metadata,
        sa.Column("sid", sa.String(64), primary_key=True),
        sa.Column("expires_at", DATETIME, nullable=False),
        sa.Index(f"{prefix}ended_sessions_expires", "expires_at"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    login_failures = sa.Table(
        f"{prefix}login_failures",
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("at", DATETIME, nullable=False),
        sa.Index(f"{prefix}login_failures_subject", "scope", "subject", "at"),
        sa.Index(f"{prefix}login_failures_at", "at"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    selections = sa.Table(
        f"{prefix}selections",
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("session", sa.String(64), nullable=False),
        sa.Column("created_at", DATETIME, nullable=False),
        sa.Column("expires_at", DATETIME, nullable=False),
        sa.Column("taken_at", DATETIME),
        sa.Column("body", JSON_TEXT, nullable=False),
        sa.Index(f"{prefix}selections_expires", "expires_at"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    return Tables(
        metadata,
        actions,
        events,
        agents,
        audit,
        audit_head,
        ended_sessions,
        login_failures,
        selections,
        f"{prefix}alembic_version",
    )

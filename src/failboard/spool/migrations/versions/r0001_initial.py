"""The spool: actions waiting for agents, their audit events, and agents last seen.

Revision ID: 0001
Revises:
Create Date: 2026-12-04

Written out in full rather than imported from ``failboard.spool.schema``: a migration is a
snapshot and must not change when the schema module does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def _prefix() -> str:
    # Table names carry the configured prefix, handed over by failboard.spool.migrate.
    return str(context.config.attributes["table_prefix"])


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}actions",
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
        sa.UniqueConstraint("idempotency_key", name=f"{p}actions_idempotency_key"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    # The claim: pending rows of one project, oldest available first.
    op.create_index(f"{p}actions_claim", f"{p}actions", ["project", "status", "available_at", "id"])
    # The reaper: processing rows whose lease ran out.
    op.create_index(f"{p}actions_lease", f"{p}actions", ["status", "lease_until"])
    # prune_finished.
    op.create_index(f"{p}actions_finished", f"{p}actions", ["status", "finished_at"])

    op.create_table(
        f"{p}events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("action_id", sa.BigInteger, nullable=False),
        sa.Column("at", DATETIME, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(255)),
        sa.Column("detail", JSON_TEXT),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index(f"{p}events_action", f"{p}events", ["action_id", "id"])

    op.create_table(
        f"{p}agents",
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(255), primary_key=True),
        sa.Column("last_seen", DATETIME, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    p = _prefix()
    op.drop_table(f"{p}agents")
    op.drop_table(f"{p}events")
    op.drop_table(f"{p}actions")

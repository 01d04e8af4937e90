"""The hash-chained audit log and its one-row head.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-10

Written out in full rather than imported from ``failboard.spool.schema``: a migration is a
snapshot and must not change when the schema module does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
GENESIS = "0" * 64


def _prefix() -> str:
    return str(context.config.attributes["table_prefix"])


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}audit",
        # Not autoincrement: the appender holding the head lock assigns last_id + 1.
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", DATETIME, nullable=False),
        sa.Column("actor", sa.String(255)),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64)),
        sa.Column("action_id", sa.BigInteger),
        sa.Column("detail", JSON_TEXT, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index(f"{p}audit_action", f"{p}audit", ["action_id"])
    head = op.create_table(
        f"{p}audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_id", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    # The chain starts empty: entry 1 will carry the all-zero hash as its prev_hash.
    op.bulk_insert(head, [{"id": 1, "last_id": 0, "hash": GENESIS}])


def downgrade() -> None:
    p = _prefix()
    op.drop_table(f"{p}audit_head")
    op.drop_table(f"{p}audit")

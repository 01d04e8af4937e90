"""The dashboards' shared state: ended sessions, sign-in failures, frozen selections.

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-20

Several dashboards behind one load balancer must agree on a sign-out, on the sign-in rate limit
and on a "select all matching" clicked on one and confirmed on another (failboard.web.shared).
Only the dashboard's database user needs these tables; agents never touch them.

Written out in full rather than imported from ``failboard.spool.schema``: a migration is a
snapshot and must not change when the schema module does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def _prefix() -> str:
    return str(context.config.attributes["table_prefix"])


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}ended_sessions",
        # sha256 of the session id: a leaked table names no live cookie.
        sa.Column("sid", sa.String(64), primary_key=True),
        # When the cookie would expire anyway: the row is useless (and purged) after that.
        sa.Column("expires_at", DATETIME, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index(f"{p}ended_sessions_expires", f"{p}ended_sessions", ["expires_at"])
    op.create_table(
        f"{p}login_failures",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(8), nullable=False),  # 'name' | 'address'
        sa.Column("subject", sa.String(64), nullable=False),  # sha256 of the name or address
        sa.Column("at", DATETIME, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    # The window's COUNT and MIN read only this index; the purge reads the second.
    op.create_index(f"{p}login_failures_subject", f"{p}login_failures", ["scope", "subject", "at"])
    op.create_index(f"{p}login_failures_at", f"{p}login_failures", ["at"])
    op.create_table(
        f"{p}selections",
        sa.Column("id", sa.String(64), primary_key=True),  # sha256 of the selection id
        sa.Column("session", sa.String(64), nullable=False),  # sha256 of the session id
        sa.Column("created_at", DATETIME, nullable=False),
        sa.Column("expires_at", DATETIME, nullable=False),
        sa.Column("taken_at", DATETIME),
        sa.Column("body", JSON_TEXT, nullable=False),  # up to 10,000 job ids per project
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index(f"{p}selections_expires", f"{p}selections", ["expires_at"])


def downgrade() -> None:
    p = _prefix()
    op.drop_table(f"{p}selections")
    op.drop_table(f"{p}login_failures")
    op.drop_table(f"{p}ended_sessions")

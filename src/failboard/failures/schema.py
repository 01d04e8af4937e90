"""failboard's failures table: where recorders write the final failures of engines that keep none.

One table serves every recorder-based engine (Celery, Huey, arq, taskiq) and any number of
projects: each row names its ``project`` and its ``engine``. It may live in a project's own
database or in the central one; see docs/failures-table.md for the schema, its indexes and the
permissions each side needs.

Times are naive UTC with microseconds (``DATETIME(6)`` on MariaDB/MySQL, ``timestamp`` on
PostgreSQL, ISO text on SQLite), so that comparisons with bound values are exact everywhere.
"""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeEngine

__all__ = [
    "DEFAULT_TABLE",
    "TABLE_PATTERN",
    "create_failures_table",
    "failures_table",
    "table_exists",
]

DEFAULT_TABLE = "failboard_failures"
TABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$"
"""A table name, optionally ``schema.table``; never quoted text from a config into SQL."""

_MYSQL = ("mysql", "mariadb")
_TABLE = re.compile(TABLE_PATTERN)


def _long_text() -> TypeEngine[str]:
    # TEXT stops at 64 KB on MySQL/MariaDB; tracebacks and arguments may be longer.
    return sa.Text().with_variant(mysql.LONGTEXT(), *_MYSQL)


def _id() -> TypeEngine[int]:
    # bigint identity; on SQLite only INTEGER PRIMARY KEY aliases the rowid.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _moment() -> TypeEngine[datetime]:
    # Microseconds: failures of one burst must keep their order on MariaDB too.
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)


def failures_table(name: str = DEFAULT_TABLE, metadata: sa.MetaData | None = None) -> sa.Table:
    """The failures table ``name`` (``schema.table`` accepted), with its indexes."""
    if not _TABLE.match(name):
        raise ValueError(f"{name!r} is not a table name")
    schema, _, table = name.rpartition(".")
    return sa.Table(
        table,
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("queue", sa.String(255)),
        sa.Column("name", sa.String(255)),
        sa.Column("args", _long_text()),
        sa.Column("kwargs", _long_text()),
        sa.Column("exception_class", sa.String(255)),
        sa.Column("exception_message", sa.Text()),
        sa.Column("traceback", _long_text()),
        sa.Column("fingerprint", sa.String(32)),
        sa.Column("attempts", sa.Integer()),
        sa.Column("worker", sa.String(255)),
        sa.Column("retry_of", sa.String(255)),
        sa.Column("options", sa.Text()),
        sa.Column("failed_at", _moment(), nullable=False),
        # Newest first per project (the list), per queue (its filter and retry_queue) and per
        # fingerprint (groups); job_id for actions, which name jobs by it.
        sa.Index(f"{table}_project_failed_at", "project", "failed_at", "id"),
        sa.Index(f"{table}_project_queue_failed_at", "project", "queue", "failed_at", "id"),
        sa.Index(f"{table}_project_fingerprint_failed_at", "project", "fingerprint", "failed_at"),
        sa.Index(f"{table}_project_job_id", "project", "job_id"),
        schema=schema or None,
        sqlite_autoincrement=True,
        mysql_charset="utf8mb4",
    )


def create_failures_table(engine: Engine, name: str = DEFAULT_TABLE) -> sa.Table:
    """Create the table and its indexes if they do not exist (idempotent); return it.

    Several workers may start at once and race to create it: whoever loses finds it made, which
    is what they wanted, so a failed CREATE is an error only if the table is still missing."""
    table = failures_table(name)
    try:
        with engine.begin() as connection:
            table.create(connection, checkfirst=True)
    except SQLAlchemyError:
        if not table_exists(engine, table):
            raise
    return table


def table_exists(engine: Engine, table: sa.Table) -> bool:
    with engine.connect() as connection:
        return sa.inspect(connection).has_table(table.name, schema=table.schema)

"""The spool's schema under Alembic, driven from code (no ``alembic.ini`` on disk).

``upgrade`` is safe to run from two processes at once: it first takes a lock that serialises
migrations of the same table prefix (an advisory lock on PostgreSQL, a named lock on MySQL,
the database write lock on SQLite), so the second process finds the schema already at head.
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from failboard.db import immediate
from failboard.exceptions import SpoolError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "AGENT_NEEDS",
    "HEAD",
    "KNOWN",
    "MIGRATIONS",
    "alembic_config",
    "current_revision",
    "head_revision",
    "is_known",
    "upgrade",
]

MIGRATIONS = Path(__file__).with_name("migrations")

# Alembic is imported only to migrate: checking the schema at every agent start must stay cheap.
# test_spool_migrate.py checks these two against Alembic's own view of migrations/versions.
KNOWN = ("0001", "0002", "0003")
"""Every revision this code has, oldest first."""
HEAD = KNOWN[-1]
"""The newest revision this code knows."""
AGENT_NEEDS = "0002"
"""The oldest revision with every table an agent touches (actions, events, agents: 0001; the
audit log its claims and outcomes append to: 0002). An agent needs no more: the dashboard's own
tables (0003, web state) are not its business, so the projects' agents and the dashboards can
be upgraded in any order around a ``failboard migrate``."""
# MySQL's GET_LOCK waits at most this long for another process's migration to finish.
LOCK_TIMEOUT_SECONDS = 120


def alembic_config(table_prefix: str) -> Config:
    """An Alembic config for the spool's migrations with tables named by ``table_prefix``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["table_prefix"] = table_prefix
    return config


def head_revision(table_prefix: str = "failboard_") -> str | None:
    """The newest revision this code knows."""
    return HEAD


def is_known(revision: str, table_prefix: str = "failboard_") -> bool:
    """Whether this code has a migration called ``revision`` (a newer failboard may not)."""
    return revision in KNOWN


def current_revision(engine: Engine, table_prefix: str) -> str | None:
    """The revision the database is at; None when the spool was never migrated."""
    table = f"{table_prefix}alembic_version"  # the prefix is validated: safe in SQL
    with engine.connect() as connection:
        if not inspect(connection).has_table(table):
            return None
        return connection.execute(text(f"SELECT version_num FROM {table}")).scalar()


def upgrade(engine: Engine, table_prefix: str) -> None:
    """Bring the spool's schema to head; a no-op when it is there already."""
    from alembic import command

    config = alembic_config(table_prefix)
    name = engine.dialect.name
    with ExitStack() as stack:
        if name in ("mysql", "mariadb"):
            # MySQL commits DDL at once but not the version row, so the named lock must outlive
            # the migration's transaction: it lives on a connection of its own and is released
            # only after that transaction has committed (the stack unwinds after the block).
            holder = stack.enter_context(engine.connect())
            lock = _mysql_lock(holder, table_prefix)
            stack.callback(holder.execute, text("SELECT RELEASE_LOCK(:name)"), {"name": lock})
        # immediate() is BEGIN IMMEDIATE on SQLite: the write lock is the migration lock there.
        with immediate(engine) as connection:
            if name == "postgresql":
                # Held until this transaction ends; PostgreSQL's DDL is transactional, so the
                # other process sees either no tables or all of them at head.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _key(table_prefix)}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


def _key(table_prefix: str) -> int:
    digest = hashlib.sha256(f"failboard-migrate:{table_prefix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _mysql_lock(connection: Connection, table_prefix: str) -> str:
    """Take the named lock for this database and prefix; return its name."""
    # GET_LOCK names are server-wide (at most 64 characters): the database is part of the key.
    database = connection.execute(text("SELECT DATABASE()")).scalar()
    name = f"failboard-migrate:{_key(f'{database}.{table_prefix}') & (2**64 - 1):016x}"
    got = connection.execute(
        text("SELECT GET_LOCK(:name, :timeout)"), {"name": name, "timeout": LOCK_TIMEOUT_SECONDS}
    ).scalar()
    if got != 1:
        raise SpoolError(
            f"spool: another process has been migrating the schema for {LOCK_TIMEOUT_SECONDS} s; "
            "try again when it is done"
        )
    return name

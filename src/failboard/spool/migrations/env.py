"""Alembic environment for the spool, always run through :mod:`failboard.spool.migrate`.

It runs on the connection ``migrate`` hands over in ``config.attributes``: that connection
already holds the lock that keeps two processes from migrating at once, and the transaction
around it, so this file only points Alembic at the prefixed version table.
"""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "the spool's migrations run through failboard (`failboard migrate` or Spool.migrate()), "
        "not the alembic command line"
    )

prefix = config.attributes["table_prefix"]
context.configure(
    connection=connection,
    target_metadata=None,
    version_table=f"{prefix}alembic_version",
)
with context.begin_transaction():
    context.run_migrations()

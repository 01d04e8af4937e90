"""Alembic migrations of the spool (run through failboard.spool.migrate)."""

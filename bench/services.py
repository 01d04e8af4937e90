"""Where the benchmark databases live, and how they are made and thrown away.

The servers are the ones the test suite uses (the same environment variables, the same loopback
defaults), so a machine that runs ``make test`` runs ``make bench``. Benchmark databases are
named ``fb_bench_*`` so they never collide with the tests' throw-away ``fb_test_*`` ones.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import make_url

__all__ = [
    "DATA_DIR",
    "MYSQL_URL",
    "POSTGRES_URL",
    "Kind",
    "clone_database",
    "database_url",
    "drop_database",
    "ensure_database",
    "recreate_database",
    "sqlite_url",
]

Kind = Literal["postgres", "mysql", "sqlite"]

POSTGRES_URL = os.environ.get(
    "FAILBOARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("FAILBOARD_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

DATA_DIR = Path(__file__).resolve().parent / ".data"
"""SQLite datasets, configs and logs; gitignored and kept between runs."""

_NAME = re.compile(r"^fb_bench_[a-z0-9_]{1,50}$")


def _checked(name: str) -> str:
    # Names end up in DDL: only our own fb_bench_* names, never anything that needs quoting.
    if not _NAME.match(name):
        raise ValueError(f"not a benchmark database name: {name!r}")
    return name


def database_url(kind: Kind, name: str) -> str:
    """The SQLAlchemy URL of benchmark database ``name`` on the ``kind`` server."""
    if kind == "sqlite":
        return sqlite_url(name)
    base = make_url(POSTGRES_URL if kind == "postgres" else MYSQL_URL)
    return base.set(database=_checked(name)).render_as_string(hide_password=False)


def sqlite_url(name: str) -> str:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DATA_DIR / (_checked(name) + '.db')}"


def _admin(kind: Kind) -> sa.Engine:
    url = make_url(POSTGRES_URL if kind == "postgres" else MYSQL_URL)
    # The maintenance database on PostgreSQL (never one we may drop), none at all on MariaDB.
    url = url.set(database="postgres" if kind == "postgres" else None)
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def _exists(connection: sa.Connection, kind: Kind, name: str) -> bool:
    if kind == "postgres":
        query = "SELECT 1 FROM pg_database WHERE datname = %(name)s"
    else:
        query = "SELECT 1 FROM information_schema.schemata WHERE schema_name = %(name)s"
    return connection.exec_driver_sql(query, {"name": name}).first() is not None


def ensure_database(kind: Kind, name: str) -> bool:
    """Create database ``name`` unless it exists; True when it was created."""
    if kind == "sqlite":
        return not (DATA_DIR / f"{_checked(name)}.db").exists()
    engine = _admin(kind)
    try:
        with engine.connect() as connection:
            if _exists(connection, kind, _checked(name)):
                return False
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
            return True
    finally:
        engine.dispose()


def drop_database(kind: Kind, name: str) -> None:
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            (DATA_DIR / f"{_checked(name)}.db{suffix}").unlink(missing_ok=True)
        return
    engine = _admin(kind)
    try:
        with engine.connect() as connection:
            force = " WITH (FORCE)" if kind == "postgres" else ""
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {_checked(name)}{force}")
    finally:
        engine.dispose()


def recreate_database(kind: Kind, name: str) -> str:
    """An empty database ``name`` (dropped first if it was there); its URL."""
    drop_database(kind, name)
    ensure_database(kind, name)
    return database_url(kind, name)


def clone_database(template: str, name: str) -> str:
    """A PostgreSQL copy of ``template`` named ``name``; its URL.

    FILE_COPY copies the files after a checkpoint instead of writing every page to the WAL
    (PostgreSQL 15's default), which is several times faster for a database of a few hundred MB.
    """
    drop_database("postgres", name)
    engine = _admin("postgres")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(
                f"CREATE DATABASE {_checked(name)} TEMPLATE {_checked(template)} STRATEGY FILE_COPY"
            )
    finally:
        engine.dispose()
    return database_url("postgres", name)

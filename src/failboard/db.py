"""SQLAlchemy engines as failboard needs them, for PostgreSQL, MariaDB/MySQL and SQLite.

Every engine: sessions in UTC, a connect timeout and a statement timeout (so a slow store cannot
hold a page hostage), SQLite in WAL mode with a busy timeout, and ``BEGIN IMMEDIATE`` available
for the spool's claim. Library errors are translated here into the failboard error tree.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import DateTime

from failboard.exceptions import ConfigError, FailboardError, StoreError, StoreUnreachable

__all__ = [
    "create_engine",
    "immediate",
    "redact_url",
    "translate_errors",
    "utcnow",
]


def redact_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def create_engine(
    url: str,
    *,
    timeout: float | None = None,
    statement_timeout: float | None = None,
    pool_size: int = 5,
    what: str = "database",
    pre_ping: bool = True,
) -> Engine:
    """An engine for ``url`` with UTC sessions and the given timeouts (seconds).

    ``pre_ping`` tests each pooled connection before use (a round trip per checkout); a caller
    that handles a dead connection itself (the recorder) turns it off."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"{what}: {url!r} is not a database URL; use sqlite:///path.db, "
            "postgresql+psycopg://user:pass@host/db or mysql+pymysql://user:pass@host/db"
        ) from exc
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"pool_pre_ping": pre_ping}
    if backend == "postgresql":
        options = "-c timezone=UTC"
        if statement_timeout:
            options += f" -c statement_timeout={int(statement_timeout * 1000)}"
            # The server cancels a slow statement; a dead network needs the client to notice.
            connect_args["tcp_user_timeout"] = int(statement_timeout * 1000)
            connect_args.update(keepalives=1, keepalives_idle=30, keepalives_interval=10)
        connect_args["options"] = options
        if timeout:
            connect_args["connect_timeout"] = max(1, round(timeout))
    elif backend in ("mysql", "mariadb"):
        connect_args["init_command"] = "SET time_zone = '+00:00'"
        connect_args["charset"] = "utf8mb4"
        if timeout:
            connect_args["connect_timeout"] = max(1, round(timeout))
        if statement_timeout:
            connect_args["read_timeout"] = max(1, round(statement_timeout))
            connect_args["write_timeout"] = max(1, round(statement_timeout))
    elif backend == "sqlite":
        connect_args["timeout"] = timeout or 30.0
        connect_args["check_same_thread"] = False
    if backend != "sqlite":
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
        kwargs["pool_recycle"] = 1800
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        extra = "postgres" if backend == "postgresql" else "mysql"
        raise ConfigError(
            f"{what}: no driver for {parsed.drivername!r}; install it with "
            f"pip install 'failboard[{extra}]'"
        ) from exc
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite opens transactions lazily and never with IMMEDIATE; take control of BEGIN so the
    # spool can claim under a write lock (the recipe from SQLAlchemy's SQLite docs).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            _wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.info.pop("sqlite_begin", "BEGIN")
        connection.exec_driver_sql(mode)


def _wal(cursor: sqlite3.Cursor, patience: float = 10.0) -> None:
    """Switch the file to WAL. Switching needs the file to itself, and SQLite answers "locked"
    at once (no busy wait) while another process opens the same new file: try again a while."""
    deadline = time.monotonic() + patience
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


@contextmanager
def immediate(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the write lock from its start on SQLite (``BEGIN IMMEDIATE``);
    an ordinary transaction elsewhere."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.info["sqlite_begin"] = "BEGIN IMMEDIATE"
        with connection.begin():
            yield connection


class utcnow(FunctionElement[Any]):
    """The database's clock, in UTC, as a naive timestamp; optionally shifted by whole seconds.

    The spool's time always comes from here, never from an agent's clock.
    """

    type = DateTime()
    inherit_cache = True
    # The offset is rendered into the SQL text, so it must be part of the statement cache key:
    # without this, utcnow(-3600) would reuse the compiled SQL of utcnow(0).
    _traverse_internals = [  # noqa: RUF012 - the shape SQLAlchemy reads
        *FunctionElement._traverse_internals,
        ("offset_seconds", InternalTraversal.dp_plain_obj),
    ]

    def __init__(self, offset_seconds: int = 0) -> None:
        self.offset_seconds = int(offset_seconds)
        super().__init__()


@compiles(utcnow, "postgresql")
def _utcnow_pg(element: utcnow, compiler: Any, **kw: Any) -> str:
    text = "(statement_timestamp() AT TIME ZONE 'UTC')"
    if element.offset_seconds:
        text = f"({text} + interval '{element.offset_seconds} seconds')"
    return text


@compiles(utcnow, "mysql")
@compiles(utcnow, "mariadb")
def _utcnow_mysql(element: utcnow, compiler: Any, **kw: Any) -> str:
    text = "UTC_TIMESTAMP(6)"
    if element.offset_seconds:
        text = f"({text} + INTERVAL {element.offset_seconds} SECOND)"
    return text


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element: utcnow, compiler: Any, **kw: Any) -> str:
    # The same text form SQLAlchemy's DateTime writes on SQLite, so stored values compare right.
    modifier = f", '{element.offset_seconds:+d} seconds'" if element.offset_seconds else ""
    return f"strftime('%Y-%m-%d %H:%M:%f000', 'now'{modifier})"


@contextmanager
def translate_errors(what: str, url: str | URL | None = None) -> Iterator[None]:
    """Map SQLAlchemy/DB-API errors raised inside to StoreUnreachable / StoreError."""
    try:
        yield
    except FailboardError:
        raise
    except DBAPIError as exc:
        where = f" ({redact_url(url)})" if url is not None else ""
        detail = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
        if exc.connection_invalidated or _is_connect_error(exc):
            raise StoreUnreachable(f"{what}{where}: cannot connect: {detail}") from exc
        raise StoreError(f"{what}{where}: {detail}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"{what}: {_first_line(exc)}") from exc


def _is_connect_error(exc: DBAPIError) -> bool:
    name = type(exc.orig).__name__ if exc.orig is not None else ""
    text = str(exc.orig).lower()
    return name == "OperationalError" and any(
        hint in text
        for hint in (
            "connect",
            "connection",
            "timeout",
            "timed out",
            "access denied",
            "authentication",
            "unable to open database",
            "lost",
            "gone away",
        )
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""Laravel's ``failed_jobs`` and ``jobs`` tables, column for column as its migrations make them.

Three generations of ``failed_jobs`` exist in the wild, and the driver reads all of them:

- ``new`` (Laravel 12.47+ / 13.x): ``connection`` and ``queue`` are ``string`` (varchar 255) with
  an index on ``(connection, queue, failed_at)``.
- ``old`` (Laravel 8 to 12.46): ``connection`` and ``queue`` are ``text``, no index.
- ``no_uuid`` (before Laravel 8): the ``old`` form without the ``uuid`` column.

``jobs`` is the table of the *database* queue driver; retrying a job inserts into it. The helpers
at the bottom create these tables and fill them in bulk, for tests, the demo and benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.schema import SchemaItem
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from failboard.drivers.laravel.payload import php_json_encode

__all__ = [
    "LaravelTimestamp",
    "Style",
    "create_tables",
    "failed_jobs_table",
    "format_sqlite_timestamp",
    "insert_failed_jobs",
    "queue_jobs_table",
]

Style = Literal["new", "old", "no_uuid"]

_MYSQL = ("mysql", "mariadb")


def _long_text() -> TypeEngine[str]:
    # Laravel's longText: LONGTEXT on MySQL/MariaDB (TEXT stops at 64 KB), text elsewhere.
    return sa.Text().with_variant(mysql.LONGTEXT(), *_MYSQL)


def _big_id() -> TypeEngine[int]:
    # $table->id(): bigint unsigned auto_increment (MySQL), bigserial (PostgreSQL),
    # integer primary key autoincrement (SQLite, where only INTEGER aliases the rowid).
    return (
        sa.BigInteger()
        .with_variant(mysql.BIGINT(unsigned=True), *_MYSQL)
        .with_variant(sa.Integer(), "sqlite")
    )


def _unsigned(tiny: bool = False) -> TypeEngine[int]:
    if tiny:  # unsignedTinyInteger: smallint on PostgreSQL, which has no tinyint
        return sa.SmallInteger().with_variant(mysql.TINYINT(unsigned=True), *_MYSQL)
    return sa.Integer().with_variant(mysql.INTEGER(unsigned=True), *_MYSQL)


class _SqliteDatetime(UserDefinedType[str]):
    """``datetime`` as Laravel declares it on SQLite, holding text; no conversion of its own."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "DATETIME"


def format_sqlite_timestamp(value: datetime) -> str:
    """The text Laravel writes into a SQLite timestamp column: ``YYYY-MM-DD HH:MM:SS``.

    Microseconds are appended only when there are some: ``'... 10:00:00'`` <
    ``'... 10:00:00.500000'`` < ``'... 10:00:01'`` as text, so comparisons stay right, while a
    whole second compares *equal* to the stored value (SQLAlchemy's own ``.000000`` suffix would
    make every tie compare unequal).
    """
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text


class LaravelTimestamp(TypeDecorator[datetime]):
    """Laravel's ``timestamp`` column: naive datetimes in, naive datetimes out.

    ``timestamp(0)`` on PostgreSQL, ``TIMESTAMP`` on MySQL, and on SQLite text in Laravel's own
    format (see :func:`format_sqlite_timestamp`). A column declared with a time zone returns
    aware values, which pass through untouched.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SqliteDatetime())
        if dialect.name == "postgresql":
            return postgresql.TIMESTAMP(precision=0)
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.TIMESTAMP())
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is not None and dialect.name == "sqlite" and isinstance(value, datetime):
            return format_sqlite_timestamp(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(str(value).strip())
        except ValueError:
            return None  # not a timestamp at all: unknown, never an error for the whole page


def failed_jobs_table(
    name: str = "failed_jobs", style: Style = "new", metadata: sa.MetaData | None = None
) -> sa.Table:
    """The ``failed_jobs`` table of Laravel's migration in the given ``style``."""
    schema, _, table = name.rpartition(".")
    text_kind: TypeEngine[str] = sa.String(255) if style == "new" else sa.Text()
    columns: list[SchemaItem] = [
        sa.Column("id", _big_id(), primary_key=True, autoincrement=True),
    ]
    if style != "no_uuid":
        columns.append(sa.Column("uuid", sa.String(255), nullable=False))
        columns.append(sa.UniqueConstraint("uuid", name=f"{table}_uuid_unique"))
    columns += [
        sa.Column("connection", text_kind, nullable=False),
        sa.Column("queue", text_kind, nullable=False),
        sa.Column("payload", _long_text(), nullable=False),
        sa.Column("exception", _long_text(), nullable=False),
        sa.Column(
            "failed_at",
            LaravelTimestamp(),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
    ]
    if style == "new":
        columns.append(
            sa.Index(
                f"{table}_connection_queue_failed_at_index", "connection", "queue", "failed_at"
            )
        )
    return sa.Table(
        table,
        metadata if metadata is not None else sa.MetaData(),
        *columns,
        schema=schema or None,
        sqlite_autoincrement=True,
    )


def queue_jobs_table(name: str = "jobs", metadata: sa.MetaData | None = None) -> sa.Table:
    """The ``jobs`` table of Laravel's database queue (times are unix seconds)."""
    schema, _, table = name.rpartition(".")
    return sa.Table(
        table,
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("id", _big_id(), primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("payload", _long_text(), nullable=False),
        sa.Column("attempts", _unsigned(tiny=True), nullable=False),
        sa.Column("reserved_at", _unsigned(), nullable=True),
        sa.Column("available_at", _unsigned(), nullable=False),
        sa.Column("created_at", _unsigned(), nullable=False),
        sa.Index(f"{table}_queue_index", "queue"),
        schema=schema or None,
        sqlite_autoincrement=True,
    )


def create_tables(
    engine: Engine | Connection,
    *,
    style: Style = "new",
    failed_table: str = "failed_jobs",
    jobs_table: str = "jobs",
) -> tuple[sa.Table, sa.Table]:
    """Create ``failed_jobs`` (in ``style``) and ``jobs`` if they do not exist; return both."""
    metadata = sa.MetaData()
    failed = failed_jobs_table(failed_table, style, metadata)
    jobs = queue_jobs_table(jobs_table, metadata)
    if isinstance(engine, Engine):
        with engine.begin() as connection:
            metadata.create_all(connection)
    else:
        metadata.create_all(engine)
    return failed, jobs


_INSERT_CHUNK = 500


def insert_failed_jobs(
    connection: Connection, rows: Iterable[Mapping[str, Any]], *, table: str = "failed_jobs"
) -> int:
    """Insert failed-job rows in bulk; returns how many.

    Each row has ``connection``, ``queue``, ``payload`` (text, or a dict encoded the way PHP
    does), ``exception``, and optionally ``uuid``, ``id`` and ``failed_at`` (a naive datetime in
    the store's zone; the database's clock when absent). Leave ``uuid`` out for a ``no_uuid``
    table. Rows are sent in chunks; the caller owns the transaction.
    """
    target = failed_jobs_table(table)
    count = 0
    chunk: list[dict[str, Any]] = []
    for row in rows:
        item = dict(row)
        if not isinstance(item.get("payload"), str):
            item["payload"] = php_json_encode(item.get("payload"))
        chunk.append(item)
        if len(chunk) >= _INSERT_CHUNK:
            count += _flush(connection, target, chunk)
            chunk = []
    if chunk:
        count += _flush(connection, target, chunk)
    return count


def _flush(connection: Connection, target: sa.Table, chunk: list[dict[str, Any]]) -> int:
    # executemany needs every row to carry the same keys; group by key set to keep it bulk.
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for item in chunk:
        groups.setdefault(tuple(sorted(item)), []).append(item)
    for items in groups.values():
        connection.execute(target.insert(), items)
    return len(chunk)

"""One project's ``failed_jobs`` table as the reader and the executor both see it.

The table is reflected once, lazily, to learn which of Laravel's three forms it has (see
:mod:`.schema`) and to refuse early, with a clear message, a table that is not a Laravel one.
Times cross this boundary as aware UTC datetimes and are stored as naive ones in the zone the
application writes them in (the ``timezone`` option).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import NoSuchTableError
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from failboard.db import translate_errors
from failboard.drivers.laravel.options import Options
from failboard.drivers.laravel.schema import failed_jobs_table
from failboard.exceptions import StoreError
from failboard.models import to_utc

__all__ = ["FailedJobsStore", "FailedTable"]

REQUIRED = ("id", "connection", "queue", "payload", "exception", "failed_at")
_NUMERIC_ID = re.compile(r"^[0-9]{1,18}$")


@dataclass(frozen=True, slots=True)
class FailedTable:
    """The reflected table: the columns failboard uses, with Laravel's types."""

    table: sa.Table
    has_uuid: bool
    aware: bool  # failed_at declared WITH time zone (not Laravel's own migration, but seen)

    @property
    def c(self) -> ReadOnlyColumnCollection[str, sa.Column[Any]]:
        return self.table.c

    def handle(self, row: Any) -> str:
        """The job's id for actions: its uuid where the table has one, else the numeric id.

        Tables upgraded to Laravel 8 may keep old rows with no uuid; those use the numeric id.
        """
        uuid = getattr(row, "uuid", None) if self.has_uuid else None
        return str(uuid) if uuid else str(row.id)

    def keys_of(self, row: Any) -> tuple[str, ...]:
        """Every id a caller may use for this row."""
        uuid = getattr(row, "uuid", None) if self.has_uuid else None
        return (str(row.id), str(uuid)) if uuid else (str(row.id),)

    def key_filter(self, keys: Iterable[str]) -> sa.ColumnElement[bool]:
        """Rows whose uuid or numeric id is one of ``keys`` (anything else matches nothing)."""
        numeric = [int(k) for k in keys if _NUMERIC_ID.match(k)]
        others = [k for k in keys if not _NUMERIC_ID.match(k)]
        conditions: list[sa.ColumnElement[bool]] = []
        if numeric:
            conditions.append(self.c.id.in_(numeric))
        if others and self.has_uuid:
            conditions.append(self.c.uuid.in_(others))
        return sa.or_(*conditions) if conditions else sa.false()


class FailedJobsStore:
    """The engine, the lazily reflected table and the time conversions of one project."""

    def __init__(self, project: str, url: str, options: Options, engine: Engine) -> None:
        self.project = project
        self.url = url
        self.options = options
        self.engine = engine
        self.zone: ZoneInfo = options.zone
        self._table: FailedTable | None = None
        self._lock = threading.Lock()
        if engine.dialect.name == "sqlite":
            # SQLite keeps whatever bytes it was given; a row that is not UTF-8 must still list.
            @event.listens_for(engine, "connect")
            def _lenient_text(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.text_factory = lambda raw: raw.decode("utf-8", "replace")

    @property
    def what(self) -> str:
        return f"project {self.project}"

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Translate database errors into StoreUnreachable / StoreError naming the project."""
        with translate_errors(self.what, self.url):
            yield

    def table(self, connection: Connection | None = None) -> FailedTable:
        """The reflected ``failed_jobs`` table (reflected on first use, then cached)."""
        if self._table is not None:
            return self._table
        with self._lock:
            if self._table is None:
                with self.errors():
                    if connection is not None:
                        self._table = self._reflect(connection)
                    else:
                        with self.engine.connect() as fresh:
                            self._table = self._reflect(fresh)
            return self._table

    def _reflect(self, connection: Connection) -> FailedTable:
        schema, _, name = self.options.table.rpartition(".")
        try:
            columns = sa.inspect(connection).get_columns(name, schema=schema or None)
        except NoSuchTableError:
            raise StoreError(
                f"{self.what}: table {self.options.table} does not exist; check the project's "
                "url and its table option (php artisan queue:failed-table makes it)"
            ) from None
        found = {column["name"].lower(): column for column in columns}
        for required in REQUIRED:
            if required not in found:
                raise StoreError(
                    f"{self.what}: table {self.options.table} has no column {required!r}; "
                    "is this a Laravel failed_jobs table?"
                )
        has_uuid = "uuid" in found
        kind = found["failed_at"]["type"]
        aware = bool(getattr(kind, "timezone", False))
        # Laravel's own column types (the SQLite timestamp format above all), whatever the
        # reflected ones; the new/old difference (varchar or text) does not matter to queries.
        table = failed_jobs_table(self.options.table, "new" if has_uuid else "no_uuid")
        return FailedTable(table=table, has_uuid=has_uuid, aware=aware)

    def to_store(self, moment: datetime) -> datetime:
        """An instant as the store keeps it: naive, in the application's zone."""
        utc = to_utc(moment)
        if self._table is not None and self._table.aware:
            return utc
        return utc.astimezone(self.zone).replace(tzinfo=None)

    def from_store(self, value: datetime | None) -> datetime | None:
        """A stored timestamp as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        return value.replace(tzinfo=self.zone).astimezone(UTC)

    def newest_first(
        self, scope: Sequence[sa.ColumnElement[bool]], batch_size: int
    ) -> Iterator[list[int]]:
        """Batches of the ids in ``scope``, by *descending* id, each read in its own short
        transaction: the order ``queue:retry --queue=Q`` pushes in (it walks
        ``DatabaseUuidFailedJobProvider::all()``, ``ORDER BY id DESC``), with one batch in
        memory instead of the whole table."""
        t = self.table()
        last: int | None = None
        while True:
            query = sa.select(t.c.id).where(*scope).order_by(t.c.id.desc()).limit(batch_size)
            if last is not None:
                query = query.where(t.c.id < last)
            with self.errors(), self.engine.connect() as connection:
                ids = [int(i) for i in connection.execute(query).scalars()]
            if not ids:
                return
            last = ids[-1]
            yield ids

    def close(self) -> None:
        self.engine.dispose()

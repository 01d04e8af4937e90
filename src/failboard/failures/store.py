"""One project's view of the failures table, as its reader and its executor both see it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from failboard.db import translate_errors
from failboard.exceptions import StoreError
from failboard.failures.schema import failures_table
from failboard.models import to_utc

__all__ = ["FailuresStore", "from_store", "to_store"]


def to_store(moment: datetime) -> datetime:
    """An instant as the table keeps it: naive UTC."""
    return to_utc(moment).replace(tzinfo=None)


def from_store(value: datetime | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime."""
    if value is None:
        return None
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    return value.replace(tzinfo=UTC)


class FailuresStore:
    """The engine and the table of one project; every query is scoped to its ``project`` rows."""

    def __init__(self, project: str, url: str, table: str, engine: Engine) -> None:
        self.project = project
        self.url = url
        self.table_name = table
        self.engine = engine
        self.table = failures_table(table)
        self.c = self.table.c
        self._checked = False
        self._lock = threading.Lock()

    @property
    def what(self) -> str:
        return f"project {self.project}"

    @property
    def mine(self) -> sa.ColumnElement[bool]:
        """This project's rows (the table may hold other projects' too)."""
        return self.c.project == self.project

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Translate database errors into StoreUnreachable / StoreError naming the project, and
        make sure the table exists first (a clear message instead of a dialect's own)."""
        with translate_errors(self.what, self.url):
            self._check()
            yield

    def _check(self) -> None:
        if self._checked:
            return
        with self._lock:
            if self._checked:
                return
            with self.engine.connect() as connection:
                exists = sa.inspect(connection).has_table(self.table.name, schema=self.table.schema)
            if not exists:
                raise StoreError(
                    f"{self.what}: the failures table {self.table_name} does not exist yet; run "
                    "failboard migrate --failures (or let the recorder make it at the first "
                    "failure)"
                )
            self._checked = True

    def close(self) -> None:
        self.engine.dispose()

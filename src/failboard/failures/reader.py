"""The Reader of every recorder-based driver: one project's rows of the failures table.

Pages are keyset pages over ``(failed_at, id)`` (the shared SQL-table machinery the Laravel
reader uses too); every filter is a portable SQL condition; a list row reads only short columns,
never arguments or tracebacks. JSON is decoded with the standard library only: the dashboard
never evaluates or unpickles what a worker wrote.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from failboard.db import create_engine
from failboard.drivers import sqltable, trigram
from failboard.drivers.base import Count, JobKey
from failboard.exceptions import InvalidRequest
from failboard.failures.options import CAPABILITIES
from failboard.failures.schema import DEFAULT_TABLE
from failboard.failures.store import FailuresStore, from_store, to_store
from failboard.models import FailedJob, FailedJobDetail, JobQuery

__all__ = ["EXCEPTION_COLUMNS", "SEARCHED", "FailuresReader", "decode_json"]

MESSAGE_HEAD = 1_000
"""Characters of an exception message a list row reads."""
MAX_QUEUES = 1_000
MAX_BUCKETS = 500
SEARCHED = (
    "job_id",
    "name",
    "queue",
    "exception_class",
    "exception_message",
    "args",
    "kwargs",
)
"""The columns ``q=`` looks in: the ones ``failboard search-index`` gives a trigram index."""
EXCEPTION_COLUMNS = ("exception_class", "exception_message")
"""The columns ``exception=`` looks in."""


def decode_json(text: str | None) -> Any:
    """Stored JSON as Python values; text that does not parse stays text."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class FailuresReader:
    """The Reader (see :class:`failboard.drivers.base.Reader`) of one recorder-based project."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        project: str,
        url: str,
        table: str = DEFAULT_TABLE,
        *,
        timeout: float = 2.0,
        engine: Engine | None = None,
    ) -> None:
        self.project = project
        if engine is None:
            engine = create_engine(
                url, timeout=timeout, statement_timeout=timeout, what=f"project {project}"
            )
        self._store = FailuresStore(project, url, table, engine)
        self._trigram = trigram.TrigramColumns()

    # -- Reader ----------------------------------------------------------------------------

    def list(self, query: JobQuery) -> list[FailedJob]:
        """Up to ``query.limit`` jobs in ``query.order``, resuming strictly past ``query.seek``.

        ``failed_after`` and ``failed_before`` are inclusive bounds."""
        store = self._store
        c = store.c
        with store.errors(), store.engine.connect() as connection:
            return self._rows(
                connection,
                self._page_conditions(connection, query),
                sqltable.keyset_order(c.failed_at, c.id, query.order),
                query.limit,
            )

    def keys(self, query: JobQuery) -> builtins.list[JobKey | FailedJob]:
        """Where the jobs :meth:`list` would return sit: ``(failed_at, id)``."""
        store = self._store
        c = store.c
        with store.errors(), store.engine.connect() as connection:
            rows = connection.execute(
                sa.select(c.id, c.failed_at)
                .where(*self._page_conditions(connection, query))
                .order_by(*sqltable.keyset_order(c.failed_at, c.id, query.order))
                .limit(query.limit)
            ).all()
        return [JobKey(from_store(row.failed_at), str(row.id)) for row in rows]

    def fetch(self, sort_keys: Sequence[str]) -> builtins.list[FailedJob]:
        """The list rows of the failures with these row ids."""
        ids = sqltable.row_ids(sort_keys)
        if not ids:
            return []
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            return self._rows(connection, [store.mine, store.c.id.in_(ids)], (), len(ids))

    def _rows(
        self,
        connection: Connection,
        conditions: Sequence[sa.ColumnElement[bool]],
        order: Sequence[sa.ColumnElement[Any]],
        limit: int,
    ) -> builtins.list[FailedJob]:
        c = self._store.c
        rows = connection.execute(
            sa.select(
                c.id,
                c.job_id,
                c.queue,
                c.name,
                c.exception_class,
                sa.func.substr(c.exception_message, 1, MESSAGE_HEAD).label("message"),
                c.fingerprint,
                c.attempts,
                c.failed_at,
            )
            .where(*conditions)
            .order_by(*order)
            .limit(limit)
        ).all()
        return [self._item(row) for row in rows]

    def get(self, job_id: str) -> FailedJobDetail | None:
        """One job in full (its newest failure when it failed more than once), or None."""
        store = self._store
        c = store.c
        with store.errors(), store.engine.connect() as connection:
            row = connection.execute(
                sa.select(store.table)
                .where(store.mine, c.job_id == str(job_id))
                .order_by(c.failed_at.desc(), c.id.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        args = decode_json(row.args)
        kwargs = decode_json(row.kwargs)
        options = decode_json(row.options)
        exception = row.traceback
        if not exception and row.exception_class:
            exception = f"{row.exception_class}: {row.exception_message or ''}"
        payload = {
            "task": row.name,
            "id": row.job_id,
            "args": args,
            "kwargs": kwargs,
            "queue": row.queue,
            "options": options,
        }
        extra = {
            "engine": row.engine,
            "kwargs": kwargs,
            "worker": row.worker,
            "retry_of": row.retry_of,
        }
        if isinstance(options, dict):
            for key in ("redacted", "lossy"):
                if key in options:
                    extra[key] = options[key]
        return FailedJobDetail(
            **self._fields(row, row.exception_message),
            payload=payload,
            exception=exception,
            args=args,
            extra={key: value for key, value in extra.items() if value is not None},
        )

    def count(self, query: JobQuery, cap: int = 10_000) -> Count:
        """How many jobs match ``query`` (its seek and limit ignored), counting to ``cap``."""
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            conditions = self._conditions(connection, query.model_copy(update={"seek": None}))
            return sqltable.capped_count(connection, store.table, conditions, cap)

    def queues(self) -> builtins.list[str]:
        """The queue names that have failed jobs, sorted."""
        store = self._store
        c = store.c
        with store.errors(), store.engine.connect() as connection:
            result = connection.execute(
                sa.select(c.queue)
                .where(store.mine, c.queue.is_not(None))
                .distinct()
                .order_by(c.queue)
                .limit(MAX_QUEUES)
            )
            return [str(queue) for queue in result.scalars()]

    def histogram(self, start: datetime, step: timedelta, buckets: int) -> builtins.list[int]:
        """Failures per bucket ``[start + i*step, start + (i+1)*step)``, in one pass."""
        if not 1 <= buckets <= MAX_BUCKETS or step <= timedelta(0):
            raise InvalidRequest(f"buckets: 1 to {MAX_BUCKETS}, with a positive step")
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            edges = [to_store(start + step * i) for i in range(buckets + 1)]
            return sqltable.histogram(connection, store.c.failed_at, edges, [store.mine])

    def ping(self) -> None:
        """Reach the database and check that the failures table is there."""
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            connection.execute(sa.select(store.c.id).where(store.mine).limit(1)).all()

    def close(self) -> None:
        self._store.close()

    # -- SQL -------------------------------------------------------------------------------

    def _conditions(
        self, connection: Connection, query: JobQuery
    ) -> builtins.list[sa.ColumnElement[bool]]:
        """Every row of the query (a count's, where a page has :meth:`_page_conditions`)."""
        searches = _searches(query)
        indexed = self._indexed(connection, searches)
        dialect = self._store.engine.dialect.name
        return [
            *self._filters(query),
            *(sqltable.contains_any(self._store.c, n, dialect, indexed) for n in searches),
        ]

    def _page_conditions(
        self, connection: Connection, query: JobQuery
    ) -> builtins.list[sa.ColumnElement[bool]]:
        """The WHERE of the query's page (see :func:`failboard.drivers.trigram.page_conditions`)."""
        searches = _searches(query)
        return trigram.page_conditions(
            connection,
            self._store.table,
            self._filters(query),
            searches,
            query.order,
            query.limit,
            self._indexed(connection, searches),
        )

    def _filters(self, query: JobQuery) -> builtins.list[sa.ColumnElement[bool]]:
        """The query's conditions but its searches: what an index on ``failed_at`` walks."""
        store = self._store
        c = store.c
        conditions: list[sa.ColumnElement[bool]] = [store.mine]
        if query.queue is not None:
            conditions.append(c.queue == query.queue)
        if query.connection is not None:
            conditions.append(sa.false())  # recorder engines have no queue connections
        if query.name:
            conditions.append(c.name == query.name)
        if query.failed_after is not None:
            conditions.append(c.failed_at >= to_store(query.failed_after))
        if query.failed_before is not None:
            conditions.append(c.failed_at <= to_store(query.failed_before))
        if query.seek is not None:
            conditions.append(
                sqltable.seek_condition(c.failed_at, c.id, query.seek, query.order, to_store)
            )
        return conditions

    def _indexed(
        self, connection: Connection, searches: Sequence[sqltable.Needles]
    ) -> frozenset[str]:
        """The columns with a trigram index; asked on the first search only, so that a plain
        listing never costs a catalog query."""
        return self._trigram.of(connection, self._store.table) if searches else frozenset()

    def _item(self, row: Any) -> FailedJob:
        return FailedJob(**self._fields(row, row.message))

    def _fields(self, row: Any, message: str | None) -> dict[str, Any]:
        return {
            "project": self.project,
            "id": str(row.job_id),
            "queue": row.queue,
            "name": row.name,
            "exception_class": row.exception_class,
            "exception_message": message,
            "failed_at": from_store(row.failed_at),
            "attempts": row.attempts,
            "fingerprint": row.fingerprint,
            "sort_key": str(row.id),
        }


def _searches(query: JobQuery) -> list[sqltable.Needles]:
    """The query's text filters, each a set of needles any of which may match."""
    searches: list[sqltable.Needles] = []
    if query.exception:
        searches.append([(name, query.exception) for name in EXCEPTION_COLUMNS])
    if query.q:
        searches.append([(name, query.q) for name in SEARCHED])
    return searches

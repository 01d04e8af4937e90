"""Reads a Laravel ``failed_jobs`` table on PostgreSQL, MariaDB/MySQL or SQLite.

Every filter runs in the database with portable SQL (no JSON functions: payloads are text, and
may not even be JSON). Pages are keyset pages over ``(failed_at, id)``; a list row carries only
the head of its payload and exception, never the whole of a payload that may weigh megabytes.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from failboard.db import create_engine
from failboard.drivers import sqltable, trigram
from failboard.drivers.base import Count, JobKey
from failboard.drivers.laravel.horizon import HorizonStore
from failboard.drivers.laravel.options import CAPABILITIES, Options
from failboard.drivers.laravel.payload import decode_payload, json_string, payload_summary
from failboard.drivers.laravel.store import FailedJobsStore, FailedTable
from failboard.exceptions import InvalidRequest
from failboard.fingerprint import fingerprint, split_exception
from failboard.models import FailedJob, FailedJobDetail, JobQuery, Seek

__all__ = ["SEARCHED", "LaravelReader", "payload_extra"]

PAYLOAD_HEAD = 4_000
"""Characters of a payload a list row reads: enough for every key before ``data.command``."""
PAYLOAD_TAIL = 300
"""Characters read from the end of a longer payload: Redis appends ``attempts`` there."""
EXCEPTION_HEAD = 2_000
"""Characters of an exception a list row reads: class, message and the top of the stack."""
EXCEPTION_TAIL = 2_000
"""Characters read from the end of a longer exception: a Python traceback names its exception
last, after the stack."""
MAX_QUEUES = 1_000
MAX_BUCKETS = 500
"""A histogram is one SELECT with a SUM(CASE ...) per bucket; this bounds its width."""
SEARCHED = ("payload", "exception", "queue")
"""The columns ``q=`` looks in (``exception=`` and ``name=`` in one of them each): the ones
``failboard search-index`` gives a trigram index."""

_EXTRA_KEYS = (
    "displayName",
    "maxTries",
    "maxExceptions",
    "failOnTimeout",
    "backoff",
    "timeout",
    "retryUntil",
    "createdAt",
    "delay",
    "deleteWhenMissingModels",
    "attempts",
    "type",
    "tags",
    "silenced",
    "pushedAt",
    "retry_of",
    "job",
)


class LaravelReader:
    """The Reader (see :class:`failboard.drivers.base.Reader`) of one Laravel application."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        project: str,
        url: str,
        options: Options | None = None,
        *,
        timeout: float = 2.0,
        engine: Engine | None = None,
    ) -> None:
        self.project = project
        self.options = options or Options()
        self.timeout = timeout  # also the Horizon lookup's Redis timeout on the detail page
        if engine is None:
            engine = create_engine(
                url, timeout=timeout, statement_timeout=timeout, what=f"project {project}"
            )
        self._store = FailedJobsStore(project, url, self.options, engine)
        self._horizon: HorizonStore | None = None
        self._trigram = trigram.TrigramColumns()

    # -- Reader ----------------------------------------------------------------------------

    def list(self, query: JobQuery) -> list[FailedJob]:
        """Up to ``query.limit`` jobs in ``query.order``, resuming strictly past ``query.seek``.

        ``failed_after`` and ``failed_before`` are inclusive bounds.
        """
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            t = store.table(connection)
            # Pick the page's ids first, then fetch their columns: the sort never drags payload
            # heads (let alone payloads) of rows that do not make the page.
            page = self._page(connection, t, query).subquery("page")
            return self._rows(connection, t, page, _order(t, query.order))

    def keys(self, query: JobQuery) -> builtins.list[JobKey | FailedJob]:
        """Where the jobs :meth:`list` would return sit: ``(failed_at, id)`` from the index."""
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            t = store.table(connection)
            rows = connection.execute(self._page(connection, t, query, t.c.failed_at)).all()
        return [JobKey(store.from_store(row.failed_at), str(row.id)) for row in rows]

    def fetch(self, sort_keys: Sequence[str]) -> builtins.list[FailedJob]:
        """The list rows of the jobs with these ids (a sort key is the numeric id)."""
        ids = sqltable.row_ids(sort_keys)
        if not ids:
            return []
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            t = store.table(connection)
            page = sa.select(t.c.id).where(t.c.id.in_(ids)).subquery("page")
            return self._rows(connection, t, page, ())

    def _page(
        self,
        connection: Connection,
        t: FailedTable,
        query: JobQuery,
        *also: sa.ColumnElement[Any],
    ) -> sa.Select[Any]:
        """The ids (and ``also``) of the query's page, in its order."""
        searches = _searches(query)
        conditions = trigram.page_conditions(
            connection,
            t.table,
            self._filters(t, query),
            searches,
            query.order,
            query.limit,
            self._indexed(connection, t, searches),
        )
        return (
            sa.select(t.c.id, *also)
            .where(*conditions)
            .order_by(*_order(t, query.order))
            .limit(query.limit)
        )

    def _rows(
        self,
        connection: Connection,
        t: FailedTable,
        page: sa.Subquery,
        order: tuple[sa.ColumnElement[Any], ...],
    ) -> builtins.list[FailedJob]:
        """The list rows of the ids in ``page``: short columns and the heads (and, for long
        texts, the tails) of the payload and the exception, never the whole of either."""
        c = t.c
        columns = [
            c.id,
            c.connection,
            c.queue,
            c.failed_at,
            sa.func.substr(c.payload, 1, PAYLOAD_HEAD + 1).label("payload_head"),
            sa.func.substr(c.exception, 1, EXCEPTION_HEAD + 1).label("exception_head"),
        ]
        if t.has_uuid:
            columns.insert(1, c.uuid)
        rows = connection.execute(
            sa.select(*columns).join_from(t.table, page, c.id == page.c.id).order_by(*order)
        ).all()
        long_payloads = [r.id for r in rows if len(r.payload_head or "") > PAYLOAD_HEAD]
        long_exceptions = [r.id for r in rows if len(r.exception_head or "") > EXCEPTION_HEAD]
        tails = self._tails(connection, c.payload, t, long_payloads, PAYLOAD_TAIL)
        exception_tails = self._tails(connection, c.exception, t, long_exceptions, EXCEPTION_TAIL)
        return [
            self._list_item(t, row, tails.get(row.id), exception_tails.get(row.id)) for row in rows
        ]

    def get(self, job_id: str) -> FailedJobDetail | None:
        """One job in full (``job_id`` is its uuid or its numeric id), or None when it is gone."""
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            t = store.table(connection)
            row = connection.execute(
                sa.select(t.table).where(t.key_filter([str(job_id)])).limit(1)
            ).first()
        if row is None:
            return None
        payload = decode_payload(row.payload)
        parts = split_exception(row.exception)
        extra = payload_extra(payload)
        if self.options.horizon and t.has_uuid and row.uuid:
            extra.update(self._horizon_extra(str(row.uuid)))
        summary = payload_summary(row.payload, complete=True)
        name = summary.get("displayName") or summary.get("commandName")
        return FailedJobDetail(
            project=self.project,
            id=t.handle(row),
            uuid=row.uuid if t.has_uuid else None,
            connection=row.connection,
            queue=row.queue,
            name=name,
            exception_class=parts.exception_class,
            exception_message=parts.message,
            failed_at=store.from_store(row.failed_at),
            attempts=summary.get("attempts"),
            fingerprint=fingerprint(parts.exception_class, parts.message, name),
            sort_key=str(row.id),
            payload=payload,
            exception=row.exception,
            max_tries=summary.get("maxTries"),
            extra=extra,
        )

    def count(self, query: JobQuery, cap: int = 10_000) -> Count:
        """How many jobs match ``query`` (its seek and limit ignored), counting to ``cap``."""
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            t = store.table(connection)
            conditions = self._conditions(connection, t, query.model_copy(update={"seek": None}))
            return sqltable.capped_count(connection, t.table, conditions, cap)

    def queues(self) -> builtins.list[str]:
        """The queue names that have failed jobs, sorted."""
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            t = store.table(connection)
            result = connection.execute(
                sa.select(t.c.queue).distinct().order_by(t.c.queue).limit(MAX_QUEUES)
            )
            return [str(queue) for queue in result.scalars() if queue is not None]

    def histogram(self, start: datetime, step: timedelta, buckets: int) -> builtins.list[int]:
        """Failures per bucket ``[start + i*step, start + (i+1)*step)``, in one pass.

        One ``SUM(CASE ...)`` per bucket instead of a GROUP BY over a date expression: date
        functions differ on every database, while comparisons with bound timestamps are portable
        and use an index on ``failed_at`` where there is one.
        """
        if not 1 <= buckets <= MAX_BUCKETS or step <= timedelta(0):
            raise InvalidRequest(f"buckets: 1 to {MAX_BUCKETS}, with a positive step")
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            t = store.table(connection)
            edges = [store.to_store(start + step * i) for i in range(buckets + 1)]
            return sqltable.histogram(connection, t.c.failed_at, edges)

    def ping(self) -> None:
        """Reach the database and check that the table is a Laravel ``failed_jobs`` table."""
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            t = store.table(connection)
            connection.execute(sa.select(t.c.id).limit(1)).all()

    def close(self) -> None:
        self._store.close()
        if self._horizon is not None:
            self._horizon.client.close()

    def _horizon_extra(self, job_id: str) -> dict[str, Any]:
        """Horizon's record of a job listed from the table (its retries, its status); a detail
        page still opens when Horizon's Redis does not answer."""
        from failboard.drivers.laravel.horizon_reader import horizon_extra
        from failboard.drivers.laravel.redis_queue import connect

        url = self.options.horizon_redis_url
        if url is None:
            return {}
        try:
            if self._horizon is None:
                self._horizon = HorizonStore(
                    connect(url, self.project, self.timeout), self.options.horizon_prefix
                )
            record = self._horizon.records([job_id]).get(job_id)
        except Exception as exc:  # Redis down: the table's copy is still worth showing
            return {"horizon_error": f"{type(exc).__name__}: {exc}"}
        return horizon_extra(record) if record is not None else {"horizon_status": None}

    # -- SQL -------------------------------------------------------------------------------

    def _conditions(
        self, connection: Connection, t: FailedTable, query: JobQuery
    ) -> builtins.list[sa.ColumnElement[bool]]:
        """Every row of the query (a count's, where a page has :meth:`_page`)."""
        searches = _searches(query)
        indexed = self._indexed(connection, t, searches)
        dialect = self._store.engine.dialect.name
        return [
            *self._filters(t, query),
            *(sqltable.contains_any(t.c, needles, dialect, indexed) for needles in searches),
        ]

    def _filters(self, t: FailedTable, query: JobQuery) -> builtins.list[sa.ColumnElement[bool]]:
        """The query's conditions but its searches: what an index on ``failed_at`` walks."""
        c = t.c
        store = self._store
        conditions: list[sa.ColumnElement[bool]] = []
        if query.queue is not None:
            conditions.append(c.queue == query.queue)
        if query.connection is not None:
            conditions.append(c.connection == query.connection)
        if query.failed_after is not None:
            conditions.append(c.failed_at >= store.to_store(query.failed_after))
        if query.failed_before is not None:
            conditions.append(c.failed_at <= store.to_store(query.failed_before))
        if query.seek is not None:
            conditions.append(self._seek_condition(t, query.seek, query.order))
        return conditions

    def _indexed(
        self, connection: Connection, t: FailedTable, searches: Sequence[sqltable.Needles]
    ) -> frozenset[str]:
        """The columns with a trigram index; asked on the first search only, so that a plain
        listing never costs a catalog query."""
        return self._trigram.of(connection, t.table) if searches else frozenset()

    def _seek_condition(self, t: FailedTable, seek: Seek, order: str) -> sa.ColumnElement[bool]:
        return sqltable.seek_condition(t.c.failed_at, t.c.id, seek, order, self._store.to_store)

    def _tails(
        self,
        connection: Connection,
        column: sa.ColumnElement[Any],
        t: FailedTable,
        ids: builtins.list[int],
        length: int,
    ) -> dict[int, str]:
        """The last ``length`` characters of ``column`` for the rows ``ids`` (long texts only)."""
        if not ids:
            return {}
        if connection.dialect.name == "sqlite":
            tail = sa.func.substr(column, -length)
        else:
            tail = sa.func.right(column, length)
        rows = connection.execute(sa.select(t.c.id, tail.label("tail")).where(t.c.id.in_(ids)))
        return {row.id: row.tail for row in rows}

    def _list_item(
        self, t: FailedTable, row: Any, tail: str | None, exception_tail: str | None
    ) -> FailedJob:
        head = row.payload_head or ""
        summary = payload_summary(head, tail, complete=len(head) <= PAYLOAD_HEAD)
        name = summary.get("displayName") or summary.get("commandName")
        exception = row.exception_head or ""
        if exception_tail is not None:
            # Head for PHP (its first block names the exception), tail for Python (its last
            # line). The tail's first line is cut mid-way: drop it, or it reads as a message.
            whole_lines = exception_tail[exception_tail.find("\n") + 1 :]
            exception = exception[:EXCEPTION_HEAD] + "\n" + whole_lines
        parts = split_exception(exception)
        return FailedJob(
            project=self.project,
            id=t.handle(row),
            uuid=getattr(row, "uuid", None),
            connection=row.connection,
            queue=row.queue,
            name=name,
            exception_class=parts.exception_class,
            exception_message=parts.message,
            failed_at=self._store.from_store(row.failed_at),
            attempts=summary.get("attempts"),
            fingerprint=fingerprint(parts.exception_class, parts.message, name),
            sort_key=str(row.id),
        )


def _order(t: FailedTable, order: str) -> tuple[sa.ColumnElement[Any], ...]:
    return sqltable.keyset_order(t.c.failed_at, t.c.id, order)


def _searches(query: JobQuery) -> builtins.list[sqltable.Needles]:
    """The query's text filters, each a set of needles any of which may match."""
    searches: list[sqltable.Needles] = []
    if query.name:
        searches.append(_name_needles(query.name))
    if query.exception:
        searches.append([("exception", query.exception)])
    if query.q:
        searches.append(_search_needles(query.q))
    return searches


def _name_needles(name: str) -> sqltable.Needles:
    """``"displayName":"<name>"`` in the payload text, written the way PHP's json_encode writes
    it (``\\\\`` for a backslash, ``\\/`` for a slash), with or without a space after the colon,
    and with non-ASCII characters raw (Laravel's push) or ``\\u``-escaped (older Laravel, and
    payloads that went through ``queue:retry``). Case-insensitive: so are PHP class names.
    """
    values = {json_string(name), json_string(name, unescaped_unicode=False)}
    needles = {f'"displayName":{sep}{value}' for value in values for sep in ("", " ")}
    return [("payload", needle) for needle in sorted(needles)]


def _search_needles(q: str) -> sqltable.Needles:
    """Case-insensitive ``q`` in the payload, the exception or the queue name (:data:`SEARCHED`).
    The payload is JSON, so ``q`` is also looked for as JSON writes it (``App\\\\Jobs`` for
    ``App\\Jobs``)."""
    in_payload = {q, json_string(q)[1:-1], json_string(q, unescaped_unicode=False)[1:-1]}
    return [
        *(("payload", value) for value in sorted(in_payload)),
        ("exception", q),
        ("queue", q),
    ]


def payload_extra(payload: Any) -> dict[str, Any]:
    """The payload fields the detail page shows beside the payload itself."""
    if not isinstance(payload, dict):
        return {}
    extra = {key: payload[key] for key in _EXTRA_KEYS if key in payload}
    data = payload.get("data")
    if isinstance(data, dict):
        for key in ("commandName", "batchId"):
            if key in data:
                extra[key] = data[key]
        # The serialized PHP command as plain text (inside the payload JSON its quotes and
        # backslashes are escaped): shown, never unserialized.
        if isinstance(data.get("command"), str):
            extra["command"] = data["command"]
    return extra

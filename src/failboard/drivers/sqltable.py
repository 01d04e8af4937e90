"""SQL machinery shared by every driver whose failures live in a SQL table.

Laravel's ``failed_jobs`` and failboard's own failures table (Celery, Huey, arq, taskiq) are read
and changed the same way: keyset pages over ``(failed_at, id)``, counts that stop at a cap, a
histogram in one pass, and bulk work walked by id in batches. The pieces here take the columns
and a ``to_store`` time conversion, so that each table keeps its own idea of time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from failboard.drivers.base import Count
from failboard.exceptions import InvalidRequest
from failboard.models import Order, Seek

__all__ = [
    "ATTEMPTS",
    "Needles",
    "capped_count",
    "chunks",
    "contains",
    "contains_any",
    "histogram",
    "keyset_order",
    "row_ids",
    "seek_condition",
    "served",
    "transient",
    "unique",
    "walk_ids",
]

ATTEMPTS = 3
"""Tries per batch when the database reports a deadlock or a lost race."""

ToStore = Callable[[datetime], Any]
T = TypeVar("T")


def keyset_order(
    at: sa.ColumnElement[Any], key: sa.ColumnElement[Any], order: Order | str
) -> tuple[sa.ColumnElement[Any], ...]:
    """ORDER BY of a keyset page: ``(failed_at, id)``, newest first unless ``order`` is oldest."""
    if order == "oldest":
        return (at.asc(), key.asc())
    return (at.desc(), key.desc())


def seek_condition(
    at: sa.ColumnElement[Any],
    key: sa.ColumnElement[Any],
    seek: Seek,
    order: Order | str,
    to_store: ToStore,
) -> sa.ColumnElement[bool]:
    """Rows strictly past ``seek`` in ``order``; the sort key is the table's integer id."""
    stored = to_store(seek.failed_at)
    newest = order == "newest"
    past: sa.ColumnElement[bool] = at < stored if newest else at > stored
    if seek.sort_key is None:
        if seek.ties == "skip":
            return past
        # "keep": the rows AT failed_at are still to come.
        keep: sa.ColumnElement[bool] = at <= stored if newest else at >= stored
        return keep
    try:
        value = int(seek.sort_key)
    except ValueError:
        raise InvalidRequest("cursor: not a cursor this server gave out") from None
    beyond = key < value if newest else key > value
    return sa.or_(past, sa.and_(at == stored, beyond))


def row_ids(sort_keys: Sequence[str]) -> list[int]:
    """The numeric row ids among ``sort_keys`` (a SQL table's sort key is its row id); anything
    else names no row, and is dropped rather than sent to the database."""
    return [int(key) for key in sort_keys if key.isascii() and key.isdigit()]


def contains(
    column: sa.ColumnElement[Any], text: str, dialect: str, *, trigram: bool = False
) -> sa.ColumnElement[bool]:
    """Case-insensitive ``text`` anywhere in ``column``, ``%`` and ``_`` taken literally.

    On PostgreSQL ``strpos(lower(column), lower(text)) > 0`` rather than ``ILIKE '%text%'``: the
    planner guesses a handful of matches for an ILIKE pattern and so scans and sorts the whole
    table, while it gives a function comparison a default third and walks the ``failed_at``
    index newest first, stopping at the page's last match (3.6 s -> 17 ms on a 100,000-row
    table, docs/benchmarks.md). ``lower`` is what PostgreSQL's ILIKE does with UTF-8 text too,
    so the rows that match are the same; strpos has no wildcards, so nothing needs escaping.
    With ``trigram`` (the column has a ``pg_trgm`` index, :mod:`.trigram`) ILIKE after all: it
    is what the index serves, and it finds the rows of a rare term without reading the table.
    Elsewhere ``lower(column) LIKE lower(:pattern)`` with the wildcards escaped.
    """
    if dialect == "postgresql" and not trigram:
        found: sa.ColumnElement[bool] = (
            sa.func.strpos(sa.func.lower(column), sa.func.lower(sa.literal(text, sa.Text))) > 0
        )
        return found
    # ILIKE '%' || :text || '%' ESCAPE '/' on PostgreSQL, with % _ / in the text escaped.
    return column.icontains(text, autoescape=True)


Needles = Sequence[tuple[str, str]]
"""One search filter (``q=``, ``exception=``, ``name=``): ``(column, text)`` pairs, any of which
may match."""


def contains_any(
    c: ReadOnlyColumnCollection[str, Any],
    needles: Needles,
    dialect: str,
    trigram: Collection[str] = (),
) -> sa.ColumnElement[bool]:
    """Any of the ``(column, text)`` pairs matches (:func:`contains`, the columns taken from
    ``c``); ``trigram`` names the columns that have a trigram index."""
    indexed = served(needles, dialect, trigram)
    return sa.or_(*(contains(c[name], text, dialect, trigram=indexed) for name, text in needles))


def served(needles: Needles, dialect: str, trigram: Collection[str]) -> bool:
    """Whether trigram indexes serve this filter: on PostgreSQL, with one on every column it reads.

    ILIKE for every pair or for none: PostgreSQL serves an OR from indexes (a BitmapOr) only
    when every branch has one. With one branch unindexed the table is read anyway, and then
    ILIKE is both slower per row than strpos and estimated so selective that the planner scans
    and sorts instead of walking ``failed_at`` to the page's last match.
    """
    return dialect == "postgresql" and all(name in trigram for name, _ in needles)


def capped_count(
    connection: Connection,
    table: sa.FromClause,
    conditions: Sequence[sa.ColumnElement[bool]],
    cap: int,
) -> Count:
    """How many rows match, counting no further than ``cap`` (a LIMIT inside the count)."""
    matching = (
        sa.select(sa.literal(1).label("one"))
        .select_from(table)
        .where(*conditions)
        .limit(cap + 1)
        .subquery("matching")
    )
    value = connection.execute(sa.select(sa.func.count()).select_from(matching)).scalar()
    total = int(value or 0)
    return Count(value=min(total, cap), capped=total > cap)


def histogram(
    connection: Connection,
    at: sa.ColumnElement[Any],
    edges: Sequence[Any],
    conditions: Sequence[sa.ColumnElement[bool]] = (),
) -> list[int]:
    """Rows per bucket ``[edges[i], edges[i+1])`` in one SELECT.

    One ``SUM(CASE ...)`` per bucket instead of a GROUP BY over a date expression: date functions
    differ on every database, while comparisons with bound timestamps are portable and use an
    index on ``failed_at`` where there is one.
    """
    buckets = len(edges) - 1
    sums = [
        sa.func.sum(sa.case((sa.and_(at >= edges[i], at < edges[i + 1]), 1), else_=0))
        for i in range(buckets)
    ]
    row = connection.execute(
        sa.select(*sums).where(at >= edges[0], at < edges[-1], *conditions)
    ).first()
    return [int(value or 0) for value in (row or [0] * buckets)]


def walk_ids(
    engine: Engine,
    table: sa.FromClause,
    key: sa.ColumnElement[Any],
    scope: Sequence[sa.ColumnElement[bool]],
    batch_size: int,
    errors: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> Iterator[list[Any]]:
    """Batches of ids in the scope, by ascending id: bounded memory at any table size.

    Each batch is read in its own short transaction, so that work done on one batch (and rows
    that leave the scope meanwhile) never holds a long read open. ``errors`` wraps each read
    (a store's error translation)."""
    last: Any = None
    while True:
        query = sa.select(key).where(*scope).order_by(key).limit(batch_size)
        if last is not None:
            query = query.where(key > last)
        with errors(), engine.connect() as connection:
            ids = list(connection.execute(query).scalars())
        if not ids:
            return
        last = ids[-1]
        yield ids


def transient(exc: BaseException) -> bool:
    """Whether a translated store error was a deadlock, a serialization failure or a lock wait:
    worth doing the batch again."""
    cause = exc.__cause__
    if not isinstance(cause, DBAPIError):
        return False
    orig = cause.orig
    if getattr(orig, "sqlstate", None) in ("40001", "40P01"):  # PostgreSQL serialization/deadlock
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in (1205, 1213):  # MySQL lock wait timeout / deadlock
        return True
    return "database is locked" in str(orig)


def unique(job_ids: Sequence[str]) -> list[str]:
    """The ids as strings, each once, in their first order."""
    return list(dict.fromkeys(str(job_id) for job_id in job_ids))


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]

"""Trigram indexes (PostgreSQL's ``pg_trgm``): which searched columns have one, how a search page
uses them, and the SQL that adds them.

A case-insensitive substring search (``q=``, ``exception=``, ``name=``) cannot use a B-tree: the
readers walk the ``failed_at`` index and stop at a page's last match, which is quick for a common
term and reads the whole table for a rare one. A GIN index with ``gin_trgm_ops`` finds the rows
of a ``%text%`` pattern directly, but it serves ``LIKE``/``ILIKE`` only, never the ``strpos``
the readers write by default (see :func:`failboard.drivers.sqltable.contains`). So a reader asks
the catalog once which of its columns have such an index and writes ``ILIKE`` for those
(:func:`page_conditions` says when); the ``failboard search-index`` command prints (or runs) the
SQL that adds them. docs/search.md has the figures.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import Connection

from failboard.drivers.sqltable import Needles, capped_count, contains_any, keyset_order, served
from failboard.exceptions import StoreError
from failboard.models import Order

__all__ = [
    "EXTENSION_SQL",
    "RECHECK_SECONDS",
    "Built",
    "TrigramColumns",
    "create_index",
    "index_name",
    "index_sql",
    "indexed_columns",
    "page_conditions",
    "qualified_name",
]

EXTENSION_SQL = "CREATE EXTENSION IF NOT EXISTS pg_trgm"

MIN_WINDOW = 1_000
"""The fewest newest rows a search page walks before it turns to the trigram indexes."""

NAME_LIMIT = 63
"""PostgreSQL's identifier length (NAMEDATALEN - 1): a longer name is cut silently, and two cut
names could collide, so that ``IF NOT EXISTS`` would skip the second index."""

# GiST trigram indexes serve ILIKE too (more slowly): a DBA who made one gets ILIKE as well.
# Partial indexes serve only queries that repeat their predicate, and an index that is not
# valid (a CONCURRENTLY build that failed or is still running) serves nothing: neither counts.
_INDEXED = sa.text(
    """
    SELECT DISTINCT a.attname
    FROM pg_index i
    CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indclass::oid[]) AS k(attnum, opclass)
    JOIN pg_opclass o ON o.oid = k.opclass
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = to_regclass(:table)
      AND i.indisvalid AND i.indisready AND i.indpred IS NULL
      AND o.opcname IN ('gin_trgm_ops', 'gist_trgm_ops')
    """
)

_ROWS = sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:table)")

_INDEX_STATE = sa.text(
    "SELECT i.indisvalid, pg_relation_size(i.indexrelid) AS size "
    "FROM pg_index i WHERE i.indexrelid = to_regclass(:index)"
)

# PostgreSQL's quoting without an engine: the SQL is printed for a DBA as often as it is run.
_PREPARER = PGDialect().identifier_preparer  # type: ignore[no-untyped-call]


def qualified_name(table: sa.Table) -> str:
    """The table as PostgreSQL's SQL writes it: schema-qualified and quoted where needed."""
    return _PREPARER.format_table(table)


def indexed_columns(connection: Connection, table: sa.Table) -> frozenset[str]:
    """The columns of ``table`` that a valid trigram index serves (none off PostgreSQL)."""
    if connection.dialect.name != "postgresql":
        return frozenset()
    found = connection.execute(_INDEXED, {"table": qualified_name(table)}).scalars()
    return frozenset(str(name) for name in found)


RECHECK_SECONDS = 300.0
"""How long a reader trusts what it found: a running dashboard uses the indexes
``failboard search-index --apply`` built (or stops using dropped ones) within this long."""


class TrigramColumns:
    """:func:`indexed_columns` of one reader's table, asked at the first search and again at the
    first one :data:`RECHECK_SECONDS` later: a search must not cost a catalog query, and indexes
    come and go rarely."""

    def __init__(
        self, recheck: float = RECHECK_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.recheck = recheck
        self.clock = clock
        self._known: frozenset[str] | None = None
        self._asked = 0.0
        self._lock = threading.Lock()

    def of(self, connection: Connection, table: sa.Table) -> frozenset[str]:
        known = self._known
        if known is not None and self.clock() - self._asked < self.recheck:
            return known
        with self._lock:
            now = self.clock()
            if self._known is None or now - self._asked >= self.recheck:
                self._known = indexed_columns(connection, table)
                self._asked = now
            return self._known


def page_conditions(
    connection: Connection,
    table: sa.Table,
    filters: Sequence[sa.ColumnElement[bool]],
    searches: Sequence[Needles],
    order: Order | str,
    limit: int,
    trigram: Collection[str],
) -> list[sa.ColumnElement[bool]]:
    """The WHERE of one page (``limit`` rows in ``order`` over ``(failed_at, id)``) of the rows
    that pass ``filters`` and every one of ``searches``; ``trigram``: the indexed columns.

    When no index serves any of the searches: the filters and strpos, one walk of ``failed_at``
    that stops at the page's last match. When one does, that walk all the same first, but over
    a window of the newest rows only; then, if the window held less than a page and was not all
    there is, the ILIKE query the indexes serve. The index finds a rare term's rows at once
    where the walk reads the whole table; but its rows come unordered, so for a common term it
    reads every match to sort them where the walk stops after a few dozen rows (on 100,000 rows,
    a term in every row: 40 ms by the walk, 13 s through the index; docs/search.md). The window,
    sqrt(limit * rows), bounds both: a term with less than a page in it is, spread evenly, in
    fewer than limit / window of the rows, so the index then rechecks about as many rows as the
    walk read at most.

    The same rows come back either way, in the same order: the window is the head of the order
    the page is cut from, so a page found in it is the page (returned as its ids).
    """
    dialect = connection.dialect.name
    if not any(served(needles, dialect, trigram) for needles in searches):
        return [*filters, *(contains_any(table.c, needles, dialect) for needles in searches)]
    rows = connection.execute(_ROWS, {"table": qualified_name(table)}).scalar()
    window = max(MIN_WINDOW, math.isqrt(limit * max(0, int(rows or 0))))
    recent = (
        sa.select(table)
        .where(*filters)
        .order_by(*keyset_order(table.c.failed_at, table.c.id, order))
        .limit(window)
        .subquery("recent")
    )
    ids: list[Any] = list(
        connection.execute(
            sa.select(recent.c.id)
            .where(*(contains_any(recent.c, needles, dialect) for needles in searches))
            .order_by(*keyset_order(recent.c.failed_at, recent.c.id, order))
            .limit(limit)
        ).scalars()
    )
    if len(ids) == limit or not capped_count(connection, table, filters, window - 1).capped:
        # A whole page, or every row the filters leave (a narrow queue or time range): done.
        return [table.c.id.in_(ids)]
    return [*filters, *(contains_any(table.c, needles, dialect, trigram) for needles in searches)]


def index_name(table: sa.Table, column: str) -> str:
    """``<table>_<column>_trgm``, the table part shortened to fit PostgreSQL's 63 characters.

    The index lives in the table's schema, so the name never carries the schema."""
    suffix = f"_{column}_trgm"
    return table.name[: NAME_LIMIT - len(suffix)] + suffix


def _qualified_index(table: sa.Table, column: str) -> str:
    name = _PREPARER.quote(index_name(table, column))
    return f"{_PREPARER.quote_schema(table.schema)}.{name}" if table.schema else name


def index_sql(table: sa.Table, column: str) -> str:
    """The statement that adds ``column``'s trigram index without blocking the table's writes.

    CONCURRENTLY builds it beside the running application (inserts of new failures go on), at
    the price of two passes over the table and no transaction block: run it in autocommit."""
    return (
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {_PREPARER.quote(index_name(table, column))} "
        f"ON {qualified_name(table)} USING gin ({_PREPARER.quote(column)} gin_trgm_ops)"
    )


@dataclass(frozen=True, slots=True)
class Built:
    """One searched column after :func:`create_index`: its index made now, or already there."""

    column: str
    name: str
    created: bool
    seconds: float
    size: int | None  # bytes of the index made now; None when it was already there


def create_index(connection: Connection, table: sa.Table, column: str) -> Built:
    """Make ``column``'s trigram index unless a valid one already serves it, under any name.

    ``connection`` must be in autocommit (CONCURRENTLY refuses a transaction block), and the
    extension made (:data:`EXTENSION_SQL`). Any other index that holds our name is an error, not
    a skip: ``IF NOT EXISTS`` would keep it, and a reader would not use it. Above all an index
    that is not valid, which a build that failed (or one still running elsewhere) leaves.
    """
    name = index_name(table, column)
    if column in indexed_columns(connection, table):
        return Built(column, name, created=False, seconds=0.0, size=None)
    qualified = _qualified_index(table, column)
    state = connection.execute(_INDEX_STATE, {"index": qualified}).first()
    if state is not None and state.indisvalid:
        raise StoreError(
            f"index {name} exists but is not a trigram index of {column}; drop it (DROP INDEX "
            f"CONCURRENTLY {qualified};) or rename it, and run this again"
        )
    if state is not None:
        raise StoreError(
            f"index {name} exists but is not valid (a build that failed, or one still running "
            f"in another session); once no build runs, DROP INDEX CONCURRENTLY {qualified}; "
            "and run this again"
        )
    started = time.perf_counter()
    connection.exec_driver_sql(index_sql(table, column))
    seconds = time.perf_counter() - started
    made = connection.execute(_INDEX_STATE, {"index": qualified}).first()
    size = int(made.size) if made is not None else None
    return Built(column, name, created=True, seconds=seconds, size=size)

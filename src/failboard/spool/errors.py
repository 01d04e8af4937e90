"""Database errors at the spool's edge: translated into :class:`SpoolError`, and the transient
ones (deadlock, serialization failure) retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from failboard.db import translate_errors
from failboard.exceptions import SpoolError, SpoolUnreachable, StoreError, StoreUnreachable

__all__ = ["is_transient", "retrying", "spool_errors"]

T = TypeVar("T")

# PostgreSQL SQLSTATEs: serialization_failure, deadlock_detected.
_PG_TRANSIENT = frozenset({"40001", "40P01"})
# MySQL/MariaDB error number of a deadlock. (Not 1205, lock wait timeout: that already waited
# innodb_lock_wait_timeout, and waiting again would only hide the stuck transaction.)
_MYSQL_TRANSIENT = frozenset({1213})


@contextmanager
def spool_errors(url: str | URL) -> Iterator[None]:
    """Raise database errors inside as SpoolError naming the (redacted) spool URL.

    ``failboard.db.translate_errors`` already knows how to tell "cannot connect" from other
    failures (:class:`SpoolUnreachable` then); only the class changes, the original DB error
    stays the ``__cause__``.
    """
    try:
        with translate_errors("spool", url):
            yield
    except StoreUnreachable as exc:
        raise SpoolUnreachable(exc.message) from exc.__cause__
    except StoreError as exc:
        raise SpoolError(exc.message) from exc.__cause__


def is_transient(exc: DBAPIError) -> bool:
    """A failure that the same transaction, run again, can get past."""
    orig = exc.orig
    if orig is None:
        return False
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _PG_TRANSIENT:
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return len(args) > 0 and args[0] in _MYSQL_TRANSIENT


def retrying(work: Callable[[], T], attempts: int = 5) -> T:
    """Run ``work``, again after a short random pause when it hit a transient DB error.

    Concurrent claimers and reapers may deadlock on MySQL (gap and index locks) even with
    SKIP LOCKED; the database picks a victim, and the victim simply tries again.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DBAPIError as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            time.sleep(random.uniform(0.005, 0.02) * attempt)
    raise AssertionError("unreachable")  # pragma: no cover

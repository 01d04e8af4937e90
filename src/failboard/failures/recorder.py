"""The Recorder: writes final failures into the failures table without ever hurting the worker.

A failure is written at once, in the worker, before the engine moves on (a few milliseconds on
a nearby database). When the table cannot be written, the row waits in a **bounded in-memory
buffer** and the recorder stops trying for a while (1 s, doubling to 60 s), so a database outage
costs each later failure nothing but an append; a background thread writes the buffer back as
soon as the database answers, and the worker's shutdown flushes it. Why a buffer and not a
plain drop: the usual outage is a restart or a failover of seconds, and a buffer loses nothing
then. Why bounded: a long outage must not grow a worker's memory. When it is full, new failures
are dropped and counted (``stats.dropped``), the first of them logged: the oldest failures of
an incident are the ones that say how it began.

**Durability of a written row** (``durable``, off by default). On PostgreSQL the recorder's
connections run with ``synchronous_commit = off`` (a startup option of its own connections,
nobody else's): the COMMIT returns before the WAL is flushed
to disk, which is most of a failure's cost (about 4 ms of 4.4 on a VM disk, 0.3 ms without the
flush). What it risks is the same kind of loss the buffer already accepts: a crash of the
*database server* (not of the worker, not a clean restart) within about 600 ms (three times
``wal_writer_delay``) of a commit can lose that row, as if it had never been written; it never
corrupts the table. ``durable=True`` keeps synchronous commits. On SQLite (WAL, ``synchronous =
NORMAL``, set for every failboard engine) a commit never waits for the disk either: a power loss
may lose the last commits, an application crash cannot; ``durable=True`` sets ``synchronous =
FULL`` on the recorder's connection. MariaDB/MySQL have no per-session switch:
``innodb_flush_log_at_trx_commit`` is global, so there the server's setting decides.

**Round trips.** A failure costs one on PostgreSQL (a single-row INSERT in autocommit). The
recorder's pool does not test a connection before each write (another round trip per failure):
a connection the write itself finds dead is dropped and the write done once more at once on a
fresh one; any other error goes to the buffer and its back-off as above.

Nothing here raises into the engine: every error is logged and counted.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from failboard.db import create_engine, redact_url
from failboard.failures.record import DEFAULT_REDACT, Dumps, Failure, _std_dumps
from failboard.failures.schema import DEFAULT_TABLE, create_failures_table, failures_table

__all__ = ["Recorder", "RecorderStats"]

log = logging.getLogger("failboard.recorder")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
CHUNK = 500


@dataclass(slots=True)
class RecorderStats:
    """Counters of one recorder (per process)."""

    recorded: int = 0
    """Rows written."""
    dropped: int = 0
    """Failures lost because the buffer was full (or a row could not even be built)."""
    write_errors: int = 0
    """Writes that failed (each one retried later from the buffer)."""
    buffered: int = 0
    """Failures waiting in memory right now."""


_LIVE: weakref.WeakSet[Recorder] = weakref.WeakSet()


class Recorder:
    """Writes each final failure of ``project`` into the failures table at ``url``.

    ``create`` makes the table on first use (the recorder's database user then needs CREATE);
    set it False when ``failboard migrate --failures`` made it. ``redact`` names the arguments
    whose values are never written (:data:`~failboard.failures.record.DEFAULT_REDACT`).
    ``dumps`` encodes args and kwargs (the engine's own JSON, so that a re-send decodes them to
    the same types). ``durable`` makes each commit wait for the database's disk (see the
    module's docstring: off by default on PostgreSQL and SQLite, where it is most of the cost).
    """

    def __init__(
        self,
        url: str,
        project: str,
        *,
        table: str = DEFAULT_TABLE,
        redact: Sequence[str] = DEFAULT_REDACT,
        create: bool = True,
        buffer_size: int = 1_000,
        timeout: float = 2.0,
        dumps: Dumps = _std_dumps,
        durable: bool = False,
    ) -> None:
        self.url = url
        self.project = project
        self.table_name = table
        self.redact = tuple(redact)
        self.create = create
        self.buffer_size = max(0, buffer_size)
        self.timeout = timeout
        self.dumps = dumps
        self.durable = durable
        self.stats = RecorderStats()
        self._table = failures_table(table)  # validates the name now, not at the first failure
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        # Also the state of a forked child: its own engine, an empty buffer (the parent keeps
        # and writes its own), no thread, fresh locks (a parent's thread may have held them).
        inherited = getattr(self, "_engine", None)
        if inherited is not None and getattr(self, "_pid", None) != os.getpid():
            # Never close or collect the parent's connections from the child: closing a
            # PostgreSQL connection sends Terminate on the socket the parent still uses.
            _INHERITED.append(inherited)
        self._pid = os.getpid()
        self._lock = threading.Lock()  # guards the buffer and the back-off
        self._write_lock = threading.Lock()  # one writer at a time
        self._engine: Engine | None = None
        self._postgres = False
        self._ready = False
        self._pending: list[dict[str, Any]] = []
        self._retry_at = 0.0
        self._backoff = BACKOFF_FIRST
        self._thread: threading.Thread | None = None
        self._closed = False
        self.stats.buffered = 0

    # -- public ----------------------------------------------------------------------------

    def record(self, failure: Failure) -> bool:
        """Write one final failure; True when it is in the table now, False when it waits in
        the buffer or was dropped. Never raises, and never waits for another writer."""
        try:
            row = failure.row(self.project, self.redact, self.dumps)
        except Exception:
            # Not even the job id in the message: its str() may be what raised.
            log.exception(
                "failboard: cannot build a failure row of project %s; dropped", self.project
            )
            self.stats.dropped += 1
            return False
        try:
            with self._lock:
                self._check_fork()
                if len(self._pending) >= self.buffer_size:
                    self._drop()
                    return False
                self._pending.append(row)
                self.stats.buffered = len(self._pending)
                due = time.monotonic() >= self._retry_at
            if due and self._write_lock.acquire(blocking=False):
                try:
                    self._drain()
                finally:
                    self._write_lock.release()
            with self._lock:
                waiting = any(pending is row for pending in self._pending)
                if self._pending:
                    self._start_thread()
            return not waiting
        except Exception:  # a bug here must not become the worker's problem
            log.exception("failboard: recorder error")
            return False

    async def record_async(self, failure: Failure) -> bool:
        """:meth:`record` for asyncio workers (arq, taskiq): the write runs in a thread, so a
        slow or unreachable database never stalls the worker's event loop and its other jobs."""
        try:
            return await asyncio.to_thread(self.record, failure)
        except Exception:  # the loop's executor is shutting down: the worker is stopping
            log.exception("failboard: recorder error")
            return False

    def flush(self) -> int:
        """Try to write what waits in the buffer now; returns how many still wait."""
        with self._lock:
            self._check_fork()
        with self._write_lock:
            self._drain()
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Flush what can be flushed and release the connections."""
        left = self.flush()
        if left:
            log.warning(
                "failboard: %d failure(s) of project %s could not be recorded before exit",
                left,
                self.project,
            )
        with self._lock:
            self._closed = True
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    # -- writing ---------------------------------------------------------------------------

    def _engine_now(self) -> Engine:
        if self._engine is None:
            engine = create_engine(
                self.url,
                timeout=self.timeout,
                statement_timeout=max(self.timeout, 5.0),
                pool_size=1,
                what=f"failures table of project {self.project}",
                pre_ping=False,  # _insert writes again when its connection was dead
            )
            dialect = engine.dialect.name
            self._postgres = dialect == "postgresql"
            if self._postgres and not self.durable:
                event.listen(engine, "do_connect", _pg_async_commit)
            if dialect == "sqlite" and self.durable:
                event.listen(engine, "connect", _sqlite_full_sync)
            self._engine = engine
        return self._engine

    def _insert(self, engine: Engine, batch: list[dict[str, Any]]) -> None:
        """Write ``batch``, all or nothing; once more on a fresh connection when the first one
        turned out dead before the write could have committed."""
        for attempt in (1, 2):
            committing = False
            try:
                with engine.connect() as connection:
                    if self._postgres and len(batch) == 1:
                        # One row, one statement: in autocommit it is its own transaction, one
                        # round trip instead of BEGIN, INSERT, COMMIT (psycopg switches modes
                        # on the client, for free). Written twice at worst if the server dies
                        # just after committing it: a duplicate row, which a retry re-sends once.
                        connection.execution_options(isolation_level="AUTOCOMMIT")
                        connection.execute(self._table.insert(), batch)
                        return
                    with connection.begin():
                        for start in range(0, len(batch), CHUNK):
                            connection.execute(self._table.insert(), batch[start : start + CHUNK])
                        committing = True  # an error from here on comes from the COMMIT
                return
            except DBAPIError as exc:
                # After a failed COMMIT the rows may be in: writing them again could double them.
                if attempt == 2 or committing or not exc.connection_invalidated:
                    raise

    def _drain(self) -> None:
        """Write the rows pending now (write lock held; the buffer lock only around the list)."""
        with self._lock:
            batch = list(self._pending)
        if not batch:
            return
        try:
            engine = self._engine_now()
            if not self._ready and self.create:
                create_failures_table(engine, self.table_name)
            self._ready = True
            self._insert(engine, batch)
        except Exception as exc:
            with self._lock:
                self.stats.write_errors += 1
                if self._backoff == BACKOFF_FIRST:  # once per outage, not once per failure
                    log.warning(
                        "failboard: cannot write failures of project %s to %s (%s: %s); "
                        "keeping up to %d in memory and retrying",
                        self.project,
                        redact_url(self.url),
                        type(exc).__name__,
                        _first_line(exc),
                        self.buffer_size,
                    )
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, BACKOFF_MAX)
            return
        with self._lock:
            if self._backoff != BACKOFF_FIRST:
                log.info("failboard: failures table of project %s reachable again", self.project)
            # Rows appended while we wrote stay for the next drain.
            del self._pending[: len(batch)]
            self.stats.recorded += len(batch)
            self.stats.buffered = len(self._pending)
            self._retry_at = 0.0
            self._backoff = BACKOFF_FIRST

    def _drop(self) -> None:
        if self.stats.dropped == 0 or self.stats.dropped % 1_000 == 0:
            log.warning(
                "failboard: failure buffer of project %s is full (%d); dropping new failures "
                "until the table is reachable (%d dropped so far)",
                self.project,
                self.buffer_size,
                self.stats.dropped + 1,
            )
        self.stats.dropped += 1

    def _start_thread(self) -> None:
        """Start the retry thread (buffer lock held) unless it runs already."""
        if self._closed or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(
            target=self._retry_loop, name="failboard-recorder", daemon=True
        )
        self._thread.start()

    def _retry_loop(self) -> None:
        pid = os.getpid()
        while True:
            with self._lock:
                if self._closed or not self._pending or self._pid != pid:
                    return
                wait = self._retry_at - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 1.0))
                continue
            with self._write_lock:
                self._drain()

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            self._reset()


_INHERITED: list[Engine] = []


def _pg_async_commit(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
    # A startup parameter of the recorder's own connections, not a SET: it costs no round trip
    # per write, and unlike a session SET it cannot stay behind on a server connection that a
    # transaction-pooling PgBouncer hands to another client (PgBouncer refuses or ignores it).
    cparams["options"] = f"{cparams.get('options', '')} -c synchronous_commit=off".strip()


def _sqlite_full_sync(dbapi_connection: Any, _record: Any) -> None:
    # After failboard's own connect hook (WAL, synchronous = NORMAL): listeners run in order.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _reset_after_fork() -> None:
    for recorder in list(_LIVE):
        recorder._reset()


def _flush_at_exit() -> None:
    for recorder in list(_LIVE):
        try:
            recorder.close()
        except Exception:
            log.exception("failboard: flushing recorder at exit")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(_flush_at_exit)

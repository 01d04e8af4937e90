"""Re-sends a recorded Celery task through the project's own app (runs in the agent only).

``app.send_task(name, args, kwargs, queue=...)``: the task goes back to the queue it failed on,
by name, so the agent needs the app's broker settings and nothing of the task's code. It goes
back to its place in the canvas too (``link``, ``link_error``, the rest of its ``chain``, its
``group_id``; see :mod:`failboard.drivers.celery.canvas`). Arguments are decoded with kombu's
JSON, which the recorder encoded them with, so datetimes, UUIDs and Decimals come back as the
same types.

One producer serves the whole action, and where the transport can defer publishing (kombu 5.7's
``Producer.batch()``: the Redis transport, unless the app retries Redis commands on timeout) the
messages of one executor batch are buffered and go out in one pipeline at :meth:`flush`, instead
of one round trip each. The executor deletes a batch's rows only after that flush returned, so a
row goes only once the broker took its message; a flush that fails leaves every row of the batch
in place (its messages may or may not have arrived: such a task may run twice, never zero times).
Other transports (RabbitMQ's pyamqp, which does not wait for the broker per message anyway)
publish each message at once, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from failboard.drivers.celery import canvas
from failboard.failures import BrokerUnreachable, StoredFailure, decode_call, project_app
from failboard.failures.app import import_app

__all__ = ["RETRY_OF_HEADER", "CeleryResender", "import_app"]

RETRY_OF_HEADER = "failboard_retry_of"
"""The message header naming the task id a re-sent task is a retry of."""

BATCH_COMMANDS = 1_000_000
"""kombu flushes a batch by itself past this many buffered broker commands; set far above what
one executor batch makes (a message is 1-5 commands), so that only :meth:`flush` delivers and
the executor always knows which messages went out."""


class CeleryResender:
    """The :class:`~failboard.failures.Resender` of Celery."""

    engine = "celery"

    def __init__(self, project: str, app: str | Any | None, *, keep_task_id: bool = False) -> None:
        self.app = project_app(project, app, "proj.celery:app", "Celery app")
        self.keep_task_id = keep_task_id
        from kombu.exceptions import OperationalError
        from kombu.utils.json import loads

        self._loads: Callable[[str], Any] = loads
        self._unreachable: tuple[type[BaseException], ...] = (OperationalError, OSError)
        self._producer: Any = None  # one producer for the whole action: half the cost per send
        self._batch: Any = None  # kombu's publish batch on it, open between two flushes
        self._buffered = 0  # messages in the open batch, not delivered yet
        self._lost: str | None = None  # why buffered messages were dropped since the last flush

    def send(self, failure: StoredFailure) -> str:
        """Publish (or buffer, until :meth:`flush`) the task again; its new task id."""
        args, kwargs = decode_call(failure, self._loads)
        # Back in its canvas as Task.retry would put it: link, link_error, the rest of the
        # chain, its group. Raises for a canvas not kept faithfully (this job fails alone).
        options: dict[str, Any] = canvas.send_options(failure.options, self._loads)
        options["headers"] = {RETRY_OF_HEADER: failure.job_id}
        if failure.queue:
            options["queue"] = failure.queue
        priority = failure.options.get("priority")
        if isinstance(priority, int):
            options["priority"] = priority
        if self.keep_task_id:
            options["task_id"] = failure.job_id
        try:
            producer = self._producer_now()
            if failure.queue and self._declared(producer, failure.queue):
                # Celery asks kombu to declare the queue with every message; kombu finds it in
                # the connection's cache only after binding a copy of the queue each time (a
                # fifth of a send's CPU). The same cache, read first: declared once per
                # connection, as before, and again after a reconnect (which empties it).
                options["declare"] = []
            result = self.app.send_task(failure.name, args, kwargs, producer=producer, **options)
        except self._unreachable as exc:
            reason = f"the broker of the Celery app cannot be reached: {type(exc).__name__}: {exc}"
            self._discard(reason)
            raise BrokerUnreachable(reason) from exc
        except Exception:
            # This job fails alone: deliver what the others buffered, and do not reuse a
            # producer left in an unknown state.
            self._close_batch()
            self._release()
            raise
        if self._batch is not None:
            self._buffered += 1
        return str(result.id)

    def flush(self) -> None:
        """Deliver what :meth:`send` buffered since the last flush. Raises
        :class:`BrokerUnreachable` when it could not, or when buffered messages were dropped
        since (the broker failed mid-batch): none of them count as sent then."""
        self._close_batch()
        lost, self._lost = self._lost, None
        if lost is not None:
            raise BrokerUnreachable(lost)

    def close(self) -> None:
        """Drop what was never flushed, and give the producer back to the app's pool; the
        app's connections are its own."""
        self._discard(None)
        self._lost = None

    # -- the producer and its batch ---------------------------------------------------------

    def _producer_now(self) -> Any:
        if self._producer is None:
            self._producer = self.app.producer_pool.acquire(block=True)
        if self._batch is None and _can_batch(self._producer):
            batch = self._producer.batch(max_size=BATCH_COMMANDS)
            batch.__enter__()
            self._batch = batch
        return self._producer

    def _declared(self, producer: Any, queue_name: str) -> bool:
        """Whether kombu would skip declaring ``queue_name`` on the producer's connection."""
        queue = self.app.amqp.queues.get(queue_name)
        if queue is None or not getattr(queue, "can_cache_declaration", False):
            return False
        declared = getattr(producer.connection, "declared_entities", None)
        return declared is not None and hash(queue) in declared

    def _close_batch(self) -> None:
        """Flush and close the open batch; a failure marks its messages lost."""
        batch, self._batch = self._batch, None
        buffered, self._buffered = self._buffered, 0
        if batch is None:
            return
        try:
            batch.__exit__(None, None, None)  # flushes, then releases its pipeline
        except Exception as exc:
            self._lost = self._lost or (
                f"the broker of the Celery app did not take a batch of {buffered} message(s) "
                f"(they may or may not have arrived): {type(exc).__name__}: {exc}"
            )
            self._release()

    def _discard(self, reason: str | None) -> None:
        """Drop the open batch unsent (the broker failed), and the producer with it."""
        batch, self._batch = self._batch, None
        buffered, self._buffered = self._buffered, 0
        if batch is not None:
            try:
                batch.__exit__(BrokerUnreachable, None, None)  # an error exit: discards
            except Exception:
                pass
            if buffered and reason is not None:
                self._lost = self._lost or reason
        self._release()

    def _release(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.release()
            except Exception:  # a broken connection: the pool makes a new one
                pass


def _can_batch(producer: Any) -> bool:
    # kombu < 5.7 has no Producer.batch(); its absence or an unsupported transport means each
    # message is published at once, which flush() then has nothing left to do for.
    return callable(getattr(producer, "batch", None)) and bool(
        getattr(producer, "supports_batch_publish", False)
    )

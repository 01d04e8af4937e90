"""Dramatiq's failure recorder: one line in the project.

    broker.add_middleware(FailboardMiddleware(url=DB_URL, project="etl"))

A dead-lettered Dramatiq message keeps no final error (its ``options.traceback`` is the attempt
before). This middleware records the real exception and traceback of the FINAL failure, the one
that dead-letters the message:

- on a ``RedisBroker``, always, in the broker's own Redis beside the dead letter
  (``<ns>:failboard:error:<redis_message_id>``, kept as long as dramatiq keeps dead letters, plus
  a day), and the queue's name in ``<ns>:failboard:queues`` so the driver finds it without
  scanning the keyspace; ``url`` is then optional;
- with ``url`` and ``project``, into failboard's failures table (any broker; this is how the
  ``rabbitmq`` broker option reads failures), arguments redacted as for every recorder.

The exception is seen in ``after_process_message``, but only ``after_nack`` says the message was
really dead-lettered (Retries decides after us, and a retried attempt is acked): the text is kept
on the message in between, never the exception object. Nothing here raises into the worker.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import socket
import time
import traceback as tb
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.middleware import Retries

from failboard.drivers.dramatiq import keys
from failboard.drivers.dramatiq.resender import MESSAGE_OPTIONS
from failboard.failures import DEFAULT_REDACT, DEFAULT_TABLE, Failure, Recorder, exception_name

__all__ = ["FailboardMiddleware"]

log = logging.getLogger("failboard.recorder")

_ATTR = "_failboard_failure"
MAX_TRACEBACK = 256 * 1024
WARN_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class _Captured:
    exception_class: str | None
    exception_message: str | None
    traceback: str | None
    attempts: int | None


class FailboardMiddleware(dramatiq.Middleware):
    """Records the final failure of every dead-lettered message (see the module's doc).

    ``url`` and ``project``: the failures table's database and the project's key in failboard's
    config; ``table``, ``redact``, ``create``, ``buffer_size``, ``timeout`` and ``durable`` as for
    :class:`~failboard.failures.Recorder`. ``errors_ttl`` overrides how long the Redis error
    records are kept (seconds).
    """

    def __init__(
        self,
        url: str | None = None,
        project: str | None = None,
        *,
        table: str = DEFAULT_TABLE,
        redact: Sequence[str] = DEFAULT_REDACT,
        create: bool = True,
        buffer_size: int = 1_000,
        timeout: float = 2.0,
        durable: bool = False,
        errors_ttl: int | None = None,
    ) -> None:
        if url is not None and not project:
            raise ValueError("FailboardMiddleware(url=...) needs project= (the project's key)")
        self.recorder: Recorder | None = None
        if url is not None and project:
            self.recorder = Recorder(
                url,
                project,
                table=table,
                redact=redact,
                create=create,
                buffer_size=buffer_size,
                timeout=timeout,
                durable=durable,
            )
        self.errors_ttl = errors_ttl
        self.redis_errors = 0
        self._warned_at = 0.0
        self._params: dict[str, tuple[str, ...] | None] = {}

    # -- hooks -----------------------------------------------------------------------------

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is None:
            return
        try:
            seen = message.options.get("retries", 0)
            seen = seen if isinstance(seen, int) else 0
            # Retries counts this failure after us when it sits earlier in the list (after_*
            # hooks run in reverse order); then the count we see is still the previous one.
            attempts = seen + 1 if _before_retries(broker, self) else seen
            setattr(message, _ATTR, _capture(exception, attempts))
        except Exception:
            log.exception("failboard: could not capture the failure of %s", message.message_id)

    def after_nack(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        try:
            captured = getattr(message, _ATTR, None)
            if not isinstance(captured, _Captured):
                # Failed before it ran (an unknown actor) or by a middleware.
                stuffed = getattr(message, "_exception", None)
                captured = (
                    _capture(stuffed, None)
                    if isinstance(stuffed, BaseException)
                    else _Captured(None, "dead-lettered without an exception", None, None)
                )
            self._record(broker, message, captured)
        except Exception:  # never let the recorder break the worker
            log.exception("failboard: could not record the failure of %s", message.message_id)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.recorder is not None:
            try:
                self.recorder.flush()
            except Exception:
                log.exception("failboard: flushing failures at shutdown")

    # -- writing ---------------------------------------------------------------------------

    def _record(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, captured: _Captured
    ) -> None:
        queue = keys.canonical(message.queue_name)
        now = datetime.now(UTC)
        worker = f"{socket.gethostname()}:{os.getpid()}"
        client = _redis_client(broker)
        rid = message.options.get("redis_message_id")
        if client is not None and isinstance(rid, str):
            self._write_redis(broker, client, queue, rid, message, captured, now, worker)
        if self.recorder is not None:
            options = {k: v for k, v in message.options.items() if k not in keys.TRANSIENT_OPTIONS}
            self.recorder.record(
                Failure(
                    engine="dramatiq",
                    job_id=message.message_id,
                    name=message.actor_name,
                    queue=queue,
                    args=list(message.args),
                    kwargs=dict(message.kwargs),
                    exception_class=captured.exception_class,
                    exception_message=captured.exception_message,
                    traceback=captured.traceback,
                    attempts=captured.attempts,
                    worker=worker,
                    options={MESSAGE_OPTIONS: options},
                    failed_at=now,
                    param_names=self._param_names(broker, message.actor_name),
                )
            )

    def _write_redis(
        self,
        broker: dramatiq.Broker,
        client: Any,
        queue: str,
        rid: str,
        message: dramatiq.MessageProxy,
        captured: _Captured,
        now: datetime,
        worker: str,
    ) -> None:
        ns = getattr(broker, "namespace", "dramatiq")
        dead_ms = getattr(broker, "dead_message_ttl", 7 * 86_400_000)
        ttl = self.errors_ttl or int(dead_ms // 1000) + keys.ERROR_SLACK
        record = {
            "exception_class": captured.exception_class,
            "exception_message": captured.exception_message,
            "traceback": captured.traceback,
            "attempts": captured.attempts,
            "message_id": message.message_id,
            "actor_name": message.actor_name,
            "failed_at": now.isoformat(),
            "worker": worker,
        }
        try:
            pipe = client.pipeline(transaction=False)
            pipe.set(keys.error_key(ns, rid), json.dumps(record), ex=ttl)
            pipe.sadd(keys.queues_key(ns), queue)
            pipe.execute()
        except Exception as exc:
            self.redis_errors += 1
            if time.monotonic() - self._warned_at > WARN_EVERY:
                self._warned_at = time.monotonic()
                log.warning(
                    "failboard: cannot record the error of dead letter %s in Redis (%s: %s); "
                    "%d such errors so far",
                    rid,
                    type(exc).__name__,
                    exc,
                    self.redis_errors,
                )

    def _param_names(self, broker: dramatiq.Broker, actor_name: str) -> tuple[str, ...] | None:
        if actor_name not in self._params:
            try:
                fn = broker.get_actor(actor_name).fn
                parameters = inspect.signature(fn).parameters.values()
                self._params[actor_name] = tuple(
                    p.name
                    for p in parameters
                    if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                )
            except Exception:
                self._params[actor_name] = None
        return self._params[actor_name]


def _redis_client(broker: dramatiq.Broker) -> Any:
    """The RedisBroker's own client; None for any other broker (or without redis-py)."""
    try:
        from dramatiq.brokers.redis import RedisBroker
    except ImportError:
        return None
    return broker.client if isinstance(broker, RedisBroker) else None


def _before_retries(broker: dramatiq.Broker, middleware: dramatiq.Middleware) -> bool:
    """Whether our after_* hooks run before Retries' (we sit later in the list)."""
    ours = retries = -1
    for index, item in enumerate(broker.middleware):
        if item is middleware:
            ours = index
        elif isinstance(item, Retries):
            retries = index
    return retries < ours


def _capture(exception: BaseException, attempts: int | None) -> _Captured:
    try:
        text = str(exception)
    except Exception:
        text = "<the exception's str() raised>"
    trace = "".join(tb.format_exception(type(exception), exception, exception.__traceback__))
    if len(trace) > MAX_TRACEBACK:
        # Its head says where it started and its tail what was raised: keep both.
        half = MAX_TRACEBACK // 2
        trace = f"{trace[:half]}\n… {len(trace) - 2 * half} characters cut …\n{trace[-half:]}"
    return _Captured(exception_name(exception), text, trace, attempts)

"""Huey's failure recorder: one line in the project.

    import failboard.integrations.huey
    failboard.integrations.huey.install(huey, url=DB_URL, project="reports")

Huey sends its signals for every attempt. A task that raised is retried while ``task.retries``
(the retries LEFT) is above zero, and the signal comes before that decision with the count not
yet lowered, so a signal with ``task.retries == 0`` is the FINAL failure: that one is recorded,
the earlier attempts are not. Besides ``SIGNAL_ERROR`` (an exception in the task) the recorder
listens to ``SIGNAL_TIMEOUT``, ``SIGNAL_LOCKED`` and ``SIGNAL_RATE_LIMITED``: Huey gives up on a
task for those too, and stores an error result as it does for an exception. Those signals carry
no exception, but Huey sends them from inside its ``except`` block, so ``sys.exc_info()`` has it.

Recorded: task id, name (``module.function``, as Huey's registry names it, which is what a
re-send needs), queue (the Huey instance's name: one instance is one queue), args and kwargs
(sensitive names redacted), exception class, message and traceback, attempts (the task's
declared retries + 1), the worker (``host:pid``), and the task's priority.
"""

from __future__ import annotations

import inspect
import logging
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from failboard.failures import (
    DEFAULT_REDACT,
    DEFAULT_TABLE,
    Failure,
    ParamNames,
    Recorder,
    describe,
    worker_name,
)

__all__ = ["install"]

log = logging.getLogger("failboard.recorder")

_INSTALLED: weakref.WeakKeyDictionary[Any, Recorder] = weakref.WeakKeyDictionary()


def install(
    huey: Any,
    *,
    url: str,
    project: str,
    table: str = DEFAULT_TABLE,
    redact: Sequence[str] = DEFAULT_REDACT,
    create: bool = True,
    buffer_size: int = 1_000,
    timeout: float = 2.0,
    durable: bool = False,
) -> Recorder:
    """Record every final task failure of ``huey`` into the failures table at ``url``.

    The options are those of :func:`failboard.integrations.celery.install`. Returns the
    :class:`~failboard.failures.Recorder`; installing twice on one instance returns the first.
    """
    from huey import signals

    existing = _INSTALLED.get(huey)
    if existing is not None:
        return existing
    recorder = Recorder(
        url,
        project,
        table=table,
        redact=redact,
        create=create,
        buffer_size=buffer_size,
        timeout=timeout,
        durable=durable,
    )
    hook = _Hook(huey, recorder)
    huey.signal(
        signals.SIGNAL_ERROR,
        signals.SIGNAL_TIMEOUT,
        signals.SIGNAL_LOCKED,
        signals.SIGNAL_RATE_LIMITED,
    )(hook.on_failure)
    # Each consumer worker runs the shutdown hooks; the buffer is per process (and atexit
    # flushes it too, for a process that ends without them).
    huey.on_shutdown(name="failboard-flush")(hook.on_shutdown)
    _INSTALLED[huey] = recorder
    return recorder


class _Hook:
    def __init__(self, huey: Any, recorder: Recorder) -> None:
        # Huey keeps the receivers, so a strong reference back would keep the instance alive.
        self.huey = weakref.ref(huey)
        self.recorder = recorder
        self._params = ParamNames()

    def on_failure(self, signal: str, task: Any, *args: Any, **_: Any) -> None:
        try:
            if task is None or task.retries:
                return  # an attempt that Huey retries: not a failure yet
            exception = args[0] if args and isinstance(args[0], BaseException) else None
            if exception is None:
                exception = sys.exc_info()[1]
            huey = self.huey()
            if huey is not None:
                self.recorder.record(self._failure(huey, signal, task, exception))
        except Exception:  # never let the recorder break the worker
            log.exception("failboard: could not record the failure of huey task %s", task)

    def on_shutdown(self) -> None:
        try:
            self.recorder.flush()
        except Exception:
            log.exception("failboard: flushing failures at shutdown")

    def _failure(
        self, huey: Any, signal: str, task: Any, exception: BaseException | None
    ) -> Failure:
        kind = type(task)
        name = huey._registry.task_to_string(kind)
        class_name, message, trace = describe(exception)
        if exception is None:  # a signal without an exception in flight (another caller)
            message = f"huey signal {signal}"
        options: dict[str, Any] = {}
        if task.priority is not None:
            options["priority"] = task.priority
        return Failure(
            engine="huey",
            job_id=str(task.id),
            name=name,
            queue=huey.name,
            args=list(task.args or ()),
            kwargs=dict(task.kwargs or {}),
            exception_class=class_name,
            exception_message=message,
            traceback=trace,
            attempts=int(getattr(kind, "default_retries", 0) or 0) + 1,
            worker=worker_name(),
            options=options,
            param_names=self._params.of(name, _function_of(kind)),
        )


def _function_of(kind: type) -> Callable[..., Any] | None:
    """The decorated function of a task class: Huey's ``execute`` closes over it as ``func``."""
    try:
        found = inspect.getclosurevars(kind.execute).nonlocals.get("func")  # type: ignore[attr-defined]
    except (TypeError, AttributeError, ValueError):
        return None
    return found if callable(found) else None

"""Celery's failure recorder: one line in the project.

    import failboard.integrations.celery
    failboard.integrations.celery.install(app, url=DB_URL, project="billing")

It connects to ``task_failure``, which Celery sends once per task, for the FINAL failure only:
an attempt that ends in a retry (``self.retry()``, ``autoretry_for``) sends ``task_retry``
instead and is not recorded. ``task_failure`` also comes from the worker's main process for a
hard time limit and for a lost pool process (``WorkerLostError``); the task's queue and retries
are then taken from what the main process saw when it received the message.

Recorded: task id and name, queue (the delivery's routing key), args and kwargs (kombu's JSON,
sensitive names redacted), exception class, message and traceback, attempts (retries + 1),
the worker's node name, the failure's time, and what a re-send needs (priority, the id this
task is a failboard retry of, and its place in the canvas: ``link``, ``link_error``, the rest of
its chain, its group and chord; see :mod:`failboard.drivers.celery.canvas`).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from failboard.drivers.celery import canvas
from failboard.drivers.celery.resender import RETRY_OF_HEADER
from failboard.failures import (
    DEFAULT_REDACT,
    DEFAULT_TABLE,
    Failure,
    ParamNames,
    Recorder,
    exception_name,
    traceback_text,
)
from failboard.failures.capture import message_of

__all__ = ["RETRY_OF_HEADER", "install"]

log = logging.getLogger("failboard.recorder")

SEEN = 10_000
"""Deliveries the main process remembers, for failures it reports without a task context."""

_CANVAS_HEADERS = ("group", "group_index", "root_id", "parent_id")
_CANVAS_EMBED = ("callbacks", "errbacks", "chain", "chord")

_INSTALLED: weakref.WeakKeyDictionary[Any, Recorder] = weakref.WeakKeyDictionary()


def install(
    app: Any,
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
    """Record every final task failure of ``app`` into the failures table at ``url``.

    ``project`` is the project's key in failboard's config; ``redact`` the argument names whose
    values are never written (they replace the defaults: extend them with
    ``(*DEFAULT_REDACT, "iban")``); ``create`` makes the table on first use; ``durable`` makes
    each write wait for the database's disk (off: on PostgreSQL a crash of the database server
    may lose the last ~0.6 s of failures, see :class:`~failboard.failures.Recorder`). Returns the
    :class:`~failboard.failures.Recorder` (its ``stats`` count what was recorded or dropped).
    Installing twice on one app returns the first recorder.
    """
    from celery import signals
    from kombu.utils.json import dumps

    existing = _INSTALLED.get(app)
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
        dumps=dumps,
        durable=durable,
    )
    hook = _Hook(app, recorder)
    uid = f"failboard-{id(app)}"
    signals.task_failure.connect(hook.on_failure, weak=False, dispatch_uid=f"{uid}-failure")
    signals.task_received.connect(hook.on_received, weak=False, dispatch_uid=f"{uid}-received")
    signals.worker_process_shutdown.connect(
        hook.on_shutdown, weak=False, dispatch_uid=f"{uid}-process-shutdown"
    )
    signals.worker_shutdown.connect(hook.on_shutdown, weak=False, dispatch_uid=f"{uid}-shutdown")
    _INSTALLED[app] = recorder
    return recorder


class _Hook:
    def __init__(self, app: Any, recorder: Recorder) -> None:
        self.app = weakref.ref(app)
        self.recorder = recorder
        self._seen: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._seen_lock = threading.Lock()
        self._params = ParamNames()

    def _ours(self, task: Any) -> bool:
        return task is not None and getattr(task, "app", None) is self.app()

    def on_received(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        """Main process: remember the delivery, for a failure reported without its context."""
        try:
            app = self.app()
            if app is None or request is None or request.task_name not in app.tasks:
                return
            headers = request.request_dict or {}
            with self._seen_lock:
                self._seen[request.id] = {
                    "delivery_info": request.delivery_info or {},
                    "retries": headers.get("retries"),
                    "hostname": request.hostname,
                    RETRY_OF_HEADER: headers.get(RETRY_OF_HEADER),
                    # The canvas is read from the request only if the task fails: a weak
                    # reference costs nothing per delivery and keeps nothing alive after it
                    # (the worker holds the request until the failure is reported).
                    "request": weakref.ref(request),
                }
                while len(self._seen) > SEEN:
                    self._seen.popitem(last=False)
        except Exception:
            log.debug("failboard: task_received hook", exc_info=True)

    def on_failure(
        self,
        sender: Any = None,
        task_id: str | None = None,
        exception: BaseException | None = None,
        args: Any = None,
        kwargs: Any = None,
        einfo: Any = None,
        **_: Any,
    ) -> None:
        try:
            if not self._ours(sender) or task_id is None or not self._first_report(task_id):
                return
            self.recorder.record(self._failure(sender, task_id, exception, args, kwargs, einfo))
        except Exception:  # never let the recorder break the worker
            log.exception("failboard: could not record the failure of task %s", task_id)

    def _first_report(self, task_id: str) -> bool:
        """Whether this is the first failure reported for the delivery the main process saw.

        Celery 5.7 reports a hard time limit twice in the main process: from the pool's error
        handler (with the task's context pushed) and from the timeout handler (without): the
        second would be a row without queue or canvas, newer than the first, and a retry
        re-sends the newest. A delivery's entry stays (marked) until the next delivery of the
        same id replaces it, or the oldest entries are dropped."""
        with self._seen_lock:
            seen = self._seen.get(task_id)
            if seen is None:
                return True  # a pool child, or a delivery forgotten: nothing to compare with
            if seen.get("reported"):
                return False
            seen["reported"] = True
            return True

    def on_shutdown(self, **_: Any) -> None:
        try:
            self.recorder.flush()
        except Exception:
            log.exception("failboard: flushing failures at shutdown")

    def _failure(
        self,
        task: Any,
        task_id: str,
        exception: BaseException | None,
        args: Any,
        kwargs: Any,
        einfo: Any,
    ) -> Failure:
        request = task.request
        if getattr(request, "id", None) == task_id:
            delivery = request.delivery_info or {}
            retries = request.retries
            hostname = request.hostname
            headers = request.headers or {}
            retry_of = headers.get(RETRY_OF_HEADER) or getattr(request, RETRY_OF_HEADER, None)
            in_canvas: Any = request
        else:
            # A hard time limit reported by the main process: no task context is pushed.
            with self._seen_lock:
                seen = self._seen.get(task_id, {})
            delivery = seen.get("delivery_info") or {}
            retries = seen.get("retries")
            hostname = seen.get("hostname")
            retry_of = seen.get(RETRY_OF_HEADER)
            received = seen.get("request")
            in_canvas = _place_of(received() if received is not None else None)
        class_name, message = _exception_parts(exception)
        options: dict[str, Any] = {}
        for key in ("exchange", "routing_key", "priority"):
            if delivery.get(key) not in (None, ""):
                options[key] = delivery[key]
        options.update(
            canvas.capture(in_canvas, self.recorder.dumps, self.recorder.redact, self._params_of)
        )
        return Failure(
            engine="celery",
            job_id=task_id,
            name=task.name,
            queue=delivery.get("routing_key") or None,
            args=list(args) if isinstance(args, list | tuple) else (args or []),
            kwargs=dict(kwargs) if isinstance(kwargs, dict) else (kwargs or {}),
            exception_class=class_name,
            exception_message=message,
            traceback=_traceback_text(exception, einfo),
            attempts=(retries + 1) if isinstance(retries, int) else None,
            worker=hostname,
            retry_of=str(retry_of) if retry_of else None,
            options=options,
            failed_at=datetime.now(UTC),
            param_names=self._params.of(str(task.name), getattr(task, "run", None)),
        )

    def _params_of(self, name: str) -> tuple[str, ...] | None:
        """The positional parameter names of another task of the app (a chain's next one)."""
        app = self.app()
        task = app.tasks.get(name) if app is not None else None
        return self._params.of(name, getattr(task, "run", None)) if task is not None else None


def _place_of(request: Any) -> dict[str, Any]:
    """The canvas fields of a request the main process received (``celery.worker.request``):
    group, root and parent ids from the headers, links, chain and chord from the body's embed
    (which has no public accessor but ``chord`` and ``errbacks``)."""
    if request is None:
        return {}
    headers = request.request_dict or {}
    place = {key: headers[key] for key in _CANVAS_HEADERS if headers.get(key) is not None}
    payload = getattr(request, "_payload", None)
    embed = payload[2] if isinstance(payload, tuple) and len(payload) == 3 else None
    if isinstance(embed, dict):
        place.update({key: embed[key] for key in _CANVAS_EMBED if embed.get(key)})
    return place


def _exception_parts(exception: BaseException | None) -> tuple[str | None, str | None]:
    if exception is None:
        return None, None
    # Celery wraps exceptions it cannot pickle; the wrapper knows the original class.
    wrapped = getattr(exception, "exc_cls_name", None)
    if isinstance(wrapped, str):
        module = getattr(exception, "exc_module", None)
        name = wrapped if module in (None, "builtins", "__main__") else f"{module}.{wrapped}"
        return name, str(getattr(exception, "text", "") or exception)
    return exception_name(exception), message_of(exception)


def _traceback_text(exception: BaseException | None, einfo: Any) -> str | None:
    text = getattr(einfo, "traceback", None)
    if isinstance(text, str) and text:
        return text
    return None if exception is None else traceback_text(exception)

"""taskiq's failure recorder: one middleware in the project.

    broker.add_middlewares(FailboardMiddleware(url=DB_URL, project="shop"))

taskiq calls every middleware's ``on_error(message, result, exception)`` after a task raised,
whatever comes next. Retries are themselves a middleware (``SimpleRetryMiddleware``,
``SmartRetryMiddleware``): in its own ``on_error`` it kicks the task again, under the same id,
with the label ``_retries`` raised by one, while ``_retries + 1 < max_retries``. Middlewares'
``on_error`` run in reverse order, so this one may run before or after the retry middleware's;
instead of depending on that order, it asks the same question the retry middleware asks (the
task's ``retry_on_error`` label or the middleware's default, its exception types, the retries
left) and records only when no retry is left: the FINAL failure. The retry middleware raises
``_retries`` in the message's own labels when it kicks, so the count is read in ``pre_execute``,
before anything ran.

Recorded: task id and name, queue (the ``queue_name`` label or the broker's ``queue_name``),
args and kwargs (sensitive names redacted), exception class, message and traceback, attempts
(``_retries`` + 1), the worker (``host:pid``), the message's labels (what a re-send keeps), and
the id this task is a failboard retry of (the ``failboard_retry_of`` label).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq.exceptions import NoResultError
from taskiq.middlewares import SimpleRetryMiddleware, SmartRetryMiddleware

from failboard.failures import (
    DEFAULT_REDACT,
    DEFAULT_TABLE,
    Failure,
    ParamNames,
    Recorder,
    describe,
    worker_name,
)

__all__ = ["LABELS", "RETRY_OF_LABEL", "FailboardMiddleware"]

log = logging.getLogger("failboard.recorder")

RETRY_OF_LABEL = "failboard_retry_of"
"""The label naming the task id a re-sent task is a failboard retry of."""
LABELS = "labels"
"""The key, in a failure row's options, of the message's labels (what a re-send keeps)."""
TRANSIENT_LABELS = frozenset({"_retries", RETRY_OF_LABEL})
"""Labels of one run, not of the task: a re-send starts without them."""


class FailboardMiddleware(TaskiqMiddleware):
    """Records the final failure of every task (see the module's doc).

    ``url`` and ``project``: the failures table's database and the project's key in failboard's
    config; ``table``, ``redact``, ``create``, ``buffer_size``, ``timeout`` and ``durable`` as for
    :class:`~failboard.failures.Recorder`.
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
        durable: bool = False,
    ) -> None:
        super().__init__()
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
        self._params = ParamNames()
        self._tries: dict[str, int] = {}  # task id -> _retries as the message came in

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        self._tries[message.task_id] = _int(message.labels.get("_retries"))
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        self._tries.pop(message.task_id, None)

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        try:
            retries = self._tries.get(message.task_id)
            if retries is None:  # not seen in pre_execute: the labels are still the incoming ones
                retries = _int(message.labels.get("_retries"))
            if isinstance(exception, NoResultError) or self._will_retry(
                message, exception, retries
            ):
                return  # not a failure, or not yet the final one
            await self.recorder.record_async(self._failure(message, exception, retries))
        except Exception:  # never let the recorder break the worker
            log.exception("failboard: could not record the failure of task %s", message.task_id)

    async def shutdown(self) -> None:
        # Runs in the worker (and in a client that shuts its broker down: nothing to flush).
        try:
            await asyncio.to_thread(self.recorder.flush)
        except Exception:
            log.exception("failboard: flushing failures at shutdown")

    def _will_retry(self, message: TaskiqMessage, exception: BaseException, retries: int) -> bool:
        """Whether one of the broker's retry middlewares kicks this task again."""
        for middleware in self.broker.middlewares:
            if isinstance(middleware, SimpleRetryMiddleware | SmartRetryMiddleware):
                if _retries_again(middleware, message, exception, retries):
                    return True
        return False

    def _failure(self, message: TaskiqMessage, exception: BaseException, retries: int) -> Failure:
        labels = dict(message.labels)
        class_name, text, trace = describe(exception)
        queue = labels.get("queue_name") or getattr(self.broker, "queue_name", None)
        retry_of = labels.get(RETRY_OF_LABEL)
        task = self.broker.find_task(message.task_name)
        kept = {k: v for k, v in labels.items() if k not in TRANSIENT_LABELS}
        return Failure(
            engine="taskiq",
            job_id=message.task_id,
            name=message.task_name,
            queue=str(queue) if queue else None,
            args=list(message.args),
            kwargs=dict(message.kwargs),
            exception_class=class_name,
            exception_message=text,
            traceback=trace,
            attempts=retries + 1,
            worker=worker_name(),
            retry_of=str(retry_of) if retry_of else None,
            options={LABELS: kept} if kept else {},
            param_names=self._params.of(
                message.task_name, task.original_func if task is not None else None
            ),
        )


def _retries_again(
    middleware: Any, message: TaskiqMessage, exception: BaseException, retries: int
) -> bool:
    """The retry middlewares' own decision (taskiq 0.11 to 0.13), asked without acting on it;
    ``retries`` is the ``_retries`` label the message came in with."""
    kinds = middleware.types_of_exceptions
    task = middleware.broker.find_task(message.task_name) if middleware.broker else None
    if task is not None and task.labels.get("types_of_exceptions") is not None:
        kinds = task.labels["types_of_exceptions"]  # per task, since taskiq 0.12
    if kinds is not None and not isinstance(exception, tuple(kinds)):
        return False
    retry_on_error = message.labels.get("retry_on_error")
    if isinstance(retry_on_error, str):
        retry_on_error = retry_on_error.lower() == "true"
    if retry_on_error is None:
        retry_on_error = middleware.default_retry_label
    if not retry_on_error:
        return False
    return retries + 1 < _int(message.labels.get("max_retries"), middleware.default_retry_count)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default

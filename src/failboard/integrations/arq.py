"""arq's failure recorder: one line in the project, after its ``WorkerSettings``.

    import failboard.integrations.arq
    failboard.integrations.arq.install(WorkerSettings, url=DB_URL, project="mailer")

arq's own hooks (``on_job_start``, ``on_job_end``, ``after_job_end``) receive only the job's
``ctx``: not its function, arguments or exception. So the recorder wraps each function of
``WorkerSettings.functions`` instead: the wrapper runs the function and sees what it raised,
with the traceback, the arguments, the job id and the try. arq retries a job only when it
raises ``Retry`` (or is cancelled by a worker shutdown); any other exception ends the job as
failed, so the wrapper records:

- any exception but ``Retry`` and cancellation: the job's final failure;
- ``Retry`` when no try is left (``job_try >= max_tries``, or ``retry_jobs=False``): arq will fail
  the job without running it again ("max N retries exceeded"); what is recorded is the
  exception the ``Retry`` was raised from, when there is one;
- a cancellation once the job's timeout has passed: arq's ``wait_for`` cancelled it, and arq
  fails it with ``TimeoutError``; the traceback shows where the job was when it was stopped.
  A cancellation before that (a worker stopping, ``Job.abort()``) is not a failure.

Jobs that fail before any function runs (expired, unknown function, aborted before start) are
not recorded (arq keeps their result key); cron jobs are not wrapped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
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

_ATTR = "_failboard_recorder"
DEFAULT_TIMEOUT = 300.0  # arq's job_timeout default, when WorkerSettings sets none
DEFAULT_MAX_TRIES = 5  # arq's max_tries default


def install(
    settings: Any,
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
    """Record every final job failure of the worker that ``settings`` (the ``WorkerSettings``
    class, or a dict of the same) describes into the failures table at ``url``.

    Wraps ``functions`` in place and chains ``on_shutdown`` (to flush what waits in memory);
    call it after ``functions`` is set. The options are those of
    :func:`failboard.integrations.celery.install`. Installing twice returns the first recorder.
    """
    from arq.worker import func

    existing = _get(settings, _ATTR)
    if isinstance(existing, Recorder):
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
    hook = _Hook(settings, recorder)
    wrapped = []
    for item in _get(settings, "functions") or ():
        function = func(item)  # a bare coroutine becomes a Function, named as arq names it
        wrapped.append(dataclasses.replace(function, coroutine=hook.wrap(function)))
    _set(settings, "functions", wrapped)
    _set(settings, "on_shutdown", _flushing(_get(settings, "on_shutdown"), recorder))
    _set(settings, _ATTR, recorder)
    return recorder


def _get(settings: Any, name: str) -> Any:
    # arq reads a settings class's own attributes only (its __dict__), or a dict's keys.
    if isinstance(settings, dict):
        return settings.get(name)
    return vars(settings).get(name)


def _set(settings: Any, name: str, value: Any) -> None:
    if isinstance(settings, dict):
        settings[name] = value
    else:
        setattr(settings, name, value)


def _flushing(
    previous: Callable[[dict[Any, Any]], Awaitable[None]] | None, recorder: Recorder
) -> Callable[[dict[Any, Any]], Awaitable[None]]:
    async def on_shutdown(ctx: dict[Any, Any]) -> None:
        try:
            if previous is not None:
                await previous(ctx)
        finally:
            try:
                await asyncio.to_thread(recorder.flush)
            except Exception:
                log.exception("failboard: flushing failures at shutdown")

    return on_shutdown


class _Hook:
    def __init__(self, settings: Any, recorder: Recorder) -> None:
        self.recorder = recorder
        self.queue = _get(settings, "queue_name")
        self.job_timeout = _seconds(_get(settings, "job_timeout"), DEFAULT_TIMEOUT)
        self.max_tries = _get(settings, "max_tries") or DEFAULT_MAX_TRIES
        retry_jobs = _get(settings, "retry_jobs")
        self.retry_jobs = True if retry_jobs is None else bool(retry_jobs)
        self._params = ParamNames()

    def wrap(self, function: Any) -> Callable[..., Coroutine[Any, Any, Any]]:
        from arq.worker import Retry

        run = function.coroutine
        name = str(function.name)
        limit = _seconds(function.timeout_s, self.job_timeout)
        max_tries = function.max_tries or self.max_tries

        @functools.wraps(run)
        async def recorded(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return await run(ctx, *args, **kwargs)
            except Retry as exc:
                if self.retry_jobs and int(ctx.get("job_try") or 1) < max_tries:
                    raise
                await self._record(ctx, run, name, args, kwargs, exc, f"{max_tries} tries")
                raise
            except asyncio.CancelledError as exc:
                if time.monotonic() - started >= limit * 0.98:  # arq's wait_for timed it out
                    await self._record(ctx, run, name, args, kwargs, exc, f"timeout {limit}s")
                raise
            except Exception as exc:
                await self._record(ctx, run, name, args, kwargs, exc, None)
                raise

        return recorded

    async def _record(
        self,
        ctx: dict[Any, Any],
        run: Callable[..., Any],
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exception: BaseException,
        why: str | None,
    ) -> None:
        try:
            class_name, message, trace = describe(exception)
            cause = exception.__cause__ or exception.__context__
            if why is not None and cause is not None:
                # Retry(...) from the real error: name that one; the Retry's traceback shows
                # both, chained.
                class_name, message, _ = describe(cause)
            if why is not None and why.startswith("timeout"):
                class_name, message = "TimeoutError", f"job exceeded its {why}"
            elif why is not None:
                message = f"{message} (no try left: {why})" if message else f"no try left: {why}"
            redis = ctx.get("redis")
            queue = getattr(redis, "default_queue_name", None) or self.queue or "arq:queue"
            failure = Failure(
                engine="arq",
                job_id=str(ctx.get("job_id")),
                name=name,
                queue=str(queue),
                args=list(args),
                kwargs=dict(kwargs),
                exception_class=class_name,
                exception_message=message,
                traceback=trace,
                attempts=ctx.get("job_try"),
                worker=worker_name(),
                param_names=self._params.of(name, run, skip=1),  # ctx is arq's, not the job's
            )
            await self.recorder.record_async(failure)
        except Exception:  # never let the recorder break the worker
            log.exception(
                "failboard: could not record the failure of arq job %s", ctx.get("job_id")
            )


def _seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    seconds = getattr(value, "total_seconds", None)  # arq accepts timedeltas too
    return float(seconds() if callable(seconds) else value)

"""Re-sends a recorded arq job through an ArqRedis pool made from the project's ``WorkerSettings``
(runs in the agent only): ``enqueue_job(name, *args, _queue_name=<its queue>, **kwargs)``.

Only the function's name is sent, so the agent needs the settings' ``redis_settings`` and
``job_serializer``, not the job's code. With ``keep_task_id`` the job goes back under its own id:
arq's ``enqueue_job(_job_id=id)`` refuses (returns None) while ``arq:result:<id>`` exists, and
the failed job's result is kept there for ``keep_result`` (an hour by default), so the result key
is deleted first. If the job's own key exists too, the job is queued or running again already:
it is not sent twice.
"""

from __future__ import annotations

import warnings
from typing import Any

from failboard.failures import (
    AsyncBridge,
    BrokerUnreachable,
    StoredFailure,
    decode_call,
    project_app,
)

__all__ = ["ArqResender"]


class ArqResender:
    """The :class:`~failboard.failures.Resender` of arq."""

    engine = "arq"

    def __init__(
        self, project: str, app: str | Any | None, *, keep_task_id: bool = False, pool: Any = None
    ) -> None:
        self.settings = (
            None
            if pool is not None
            else project_app(project, app, "proj.worker:WorkerSettings", "arq WorkerSettings")
        )
        self.keep_task_id = keep_task_id
        self._pool = pool
        self._own_pool = pool is None
        self._bridge = AsyncBridge()
        from redis import exceptions

        self._unreachable: tuple[type[BaseException], ...] = (
            exceptions.ConnectionError,
            exceptions.TimeoutError,
            OSError,
        )

    def send(self, failure: StoredFailure) -> str:
        args, kwargs = decode_call(failure)
        try:
            return self._bridge.run(self._send(failure, args, kwargs))
        except self._unreachable as exc:
            raise BrokerUnreachable(
                f"the Redis of the arq worker cannot be reached: {type(exc).__name__}: {exc}"
            ) from exc

    async def _send(self, failure: StoredFailure, args: list[Any], kwargs: dict[str, Any]) -> str:
        from arq.constants import result_key_prefix

        pool = await self._pool_now()
        options: dict[str, Any] = {}
        if failure.queue:
            options["_queue_name"] = failure.queue
        if self.keep_task_id:
            await pool.delete(result_key_prefix + failure.job_id)
            options["_job_id"] = failure.job_id
        job = await pool.enqueue_job(failure.name, *args, **options, **kwargs)
        if job is None:
            raise ValueError(f"arq job {failure.job_id} is queued or running already: not re-sent")
        return str(job.job_id)

    async def _pool_now(self) -> Any:
        if self._pool is None:
            from arq import create_pool

            settings = vars(self.settings) if not isinstance(self.settings, dict) else self.settings
            with warnings.catch_warnings():
                # arq 0.28 passes retry_on_timeout, which redis-py 6+ deprecates and ignores.
                warnings.filterwarnings("ignore", ".*retry_on_timeout", DeprecationWarning)
                self._pool = await create_pool(
                    settings.get("redis_settings"), job_serializer=settings.get("job_serializer")
                )
        return self._pool

    def close(self) -> None:
        pool = self._pool if self._own_pool else None
        self._pool = None if self._own_pool else self._pool

        async def cleanup() -> None:
            if pool is not None:
                await pool.aclose()

        self._bridge.close(cleanup)

"""Re-sends a recorded taskiq task through the project's own broker (runs in the agent only):
``AsyncKicker(name, broker, labels).with_labels(failboard_retry_of=<id>).kiq(*args, **kwargs)``.

The task is kicked BY NAME with the labels it was sent with (``_retries`` dropped, so a retry
middleware starts counting afresh), so the agent needs the broker, not the task's code. The
broker is started once per action (``broker.startup()``, as a taskiq client does) and shut down
after; the broker's own middlewares see the message (``pre_send``), as for any kick.
"""

from __future__ import annotations

from typing import Any

from failboard.failures import (
    AsyncBridge,
    BrokerUnreachable,
    StoredFailure,
    decode_call,
    project_app,
)
from failboard.integrations.taskiq import LABELS, RETRY_OF_LABEL

__all__ = ["TaskiqResender"]


class TaskiqResender:
    """The :class:`~failboard.failures.Resender` of taskiq."""

    engine = "taskiq"

    def __init__(self, project: str, app: str | Any | None, *, keep_task_id: bool = False) -> None:
        self.broker = project_app(project, app, "proj.tasks:broker", "taskiq broker")
        self.keep_task_id = keep_task_id
        self._bridge = AsyncBridge()
        self._started = False

    def send(self, failure: StoredFailure) -> str:
        args, kwargs = decode_call(failure)
        return self._bridge.run(self._send(failure, args, kwargs))

    async def _send(self, failure: StoredFailure, args: list[Any], kwargs: dict[str, Any]) -> str:
        from taskiq.exceptions import SendTaskError
        from taskiq.kicker import AsyncKicker

        labels = failure.options.get(LABELS)
        labels = dict(labels) if isinstance(labels, dict) else {}
        default_queue = getattr(self.broker, "queue_name", None)
        if failure.queue and failure.queue != default_queue and "queue_name" not in labels:
            labels["queue_name"] = failure.queue  # back to the queue it failed on
        labels[RETRY_OF_LABEL] = failure.job_id
        kicker: AsyncKicker[Any, Any] = AsyncKicker(
            task_name=str(failure.name), broker=self.broker, labels=labels
        )
        if self.keep_task_id:
            kicker = kicker.with_task_id(failure.job_id)
        try:
            if not self._started:
                await self.broker.startup()
                self._started = True
            task = await kicker.kiq(*args, **kwargs)
        except (SendTaskError, OSError, ConnectionError) as exc:
            cause = exc.__cause__ if isinstance(exc, SendTaskError) else exc
            if _unreachable(cause):
                raise BrokerUnreachable(
                    f"the taskiq broker cannot be reached: {type(cause).__name__}: {cause}"
                ) from exc
            raise
        return str(task.task_id)

    def close(self) -> None:
        started, self._started = self._started, False

        async def cleanup() -> None:
            if started:
                await self.broker.shutdown()

        self._bridge.close(cleanup)


def _unreachable(error: BaseException | None) -> bool:
    if isinstance(error, OSError | ConnectionError):
        return True
    try:
        from redis import exceptions
    except ImportError:
        return False
    return isinstance(error, exceptions.ConnectionError | exceptions.TimeoutError)

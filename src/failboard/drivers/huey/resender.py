"""Re-sends a recorded Huey task through the project's own Huey instance (runs in the agent only).

The task is re-created BY NAME: a message like the one ``huey.enqueue`` writes (Huey's own
``Message``, serialized by the instance's serializer, so compression and pickle settings match),
put on the instance's storage. The agent needs the instance's storage settings, not the task's
code, and the task's module need not be imported (as with Celery's ``send_task``). The task goes
back to the queue it failed on (the recorded instance name). The retries, delay and timeout are
the task's declared ones, as for a new call.
"""

from __future__ import annotations

import uuid
from typing import Any

from failboard.failures import BrokerUnreachable, StoredFailure, decode_call, project_app

__all__ = ["HueyResender"]


class HueyResender:
    """The :class:`~failboard.failures.Resender` of Huey."""

    engine = "huey"

    def __init__(self, project: str, app: str | Any | None, *, keep_task_id: bool = False) -> None:
        self.huey = project_app(project, app, "proj.tasks:huey", "Huey instance")
        self.keep_task_id = keep_task_id
        from huey.registry import Message

        self._message = Message
        self._unreachable = _unreachable_errors()
        self._storages: dict[str, Any] = {}

    def send(self, failure: StoredFailure) -> str:
        args, kwargs = decode_call(failure)
        storage = self._storage(failure.queue)
        task_id = failure.job_id if self.keep_task_id else str(uuid.uuid4())
        priority = failure.options.get("priority")
        message = self._message(
            id=task_id,
            name=failure.name,
            args=tuple(args),
            kwargs=kwargs,
            priority=priority if isinstance(priority, int) else None,
        )
        try:
            data = self.huey.serializer.serialize(message)
            storage.enqueue(data, message.priority)
        except self._unreachable as exc:
            raise BrokerUnreachable(
                f"the storage of the Huey instance cannot be reached: {type(exc).__name__}: {exc}"
            ) from exc
        return task_id

    def _storage(self, queue: str | None) -> Any:
        """The storage of the queue the task failed on: the instance's own, or (a project with
        several Huey instances on one Redis) one like it under the recorded instance name."""
        if not queue or queue == self.huey.name:
            return self.huey.storage
        if queue not in self._storages:
            kind = getattr(self.huey, "storage_class", None) or type(self.huey.storage)
            self._storages[queue] = kind(queue, **self.huey.storage_kwargs)
        return self._storages[queue]

    def close(self) -> None:
        """Nothing to release: the instance's connections are its own, and the storages made
        for other queues share its settings (and, given a pool, its connections)."""
        self._storages.clear()


def _unreachable_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError,)
    try:
        from redis import exceptions
    except ImportError:  # a Huey on SQLite or files: only OS errors mean "unreachable"
        return errors
    return (*errors, exceptions.ConnectionError, exceptions.TimeoutError)

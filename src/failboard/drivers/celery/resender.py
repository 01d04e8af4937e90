"""Re-sends a recorded Celery task through the project's own app (runs in the agent only).

``app.send_task(name, args, kwargs, queue=...)``: the task goes back to the queue it failed on,
by name, so the agent needs the app's broker settings and nothing of the task's code. Arguments
are decoded with kombu's JSON, which the recorder encoded them with, so datetimes, UUIDs and
Decimals come back as the same types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from failboard.failures import BrokerUnreachable, StoredFailure, decode_call, project_app
from failboard.failures.app import import_app

__all__ = ["RETRY_OF_HEADER", "CeleryResender", "import_app"]

RETRY_OF_HEADER = "failboard_retry_of"
"""The message header naming the task id a re-sent task is a retry of."""


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

    def send(self, failure: StoredFailure) -> str:
        args, kwargs = decode_call(failure, self._loads)
        options: dict[str, Any] = {"headers": {RETRY_OF_HEADER: failure.job_id}}
        if failure.queue:
            options["queue"] = failure.queue
        priority = failure.options.get("priority")
        if isinstance(priority, int):
            options["priority"] = priority
        if self.keep_task_id:
            options["task_id"] = failure.job_id
        try:
            if self._producer is None:
                self._producer = self.app.producer_pool.acquire(block=True)
            result = self.app.send_task(
                failure.name, args, kwargs, producer=self._producer, **options
            )
        except self._unreachable as exc:
            self._release()
            raise BrokerUnreachable(
                f"the broker of the Celery app cannot be reached: {type(exc).__name__}: {exc}"
            ) from exc
        except Exception:
            self._release()  # a producer in an unknown state is not reused
            raise
        return str(result.id)

    def close(self) -> None:
        """Give the producer back to the app's pool; the app's connections are its own."""
        self._release()

    def _release(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.release()
            except Exception:  # a broken connection: the pool makes a new one
                pass

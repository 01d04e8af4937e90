"""Re-sends a recorded Celery task through the project's own app (runs in the agent only).

``app.send_task(name, args, kwargs, queue=...)``: the task goes back to the queue it failed on,
by name, so the agent needs the app's broker settings and nothing of the task's code. Arguments
are decoded with kombu's JSON, which the recorder encoded them with, so datetimes, UUIDs and
Decimals come back as the same types.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from failboard.exceptions import ConfigError
from failboard.failures import BrokerUnreachable, StoredFailure

__all__ = ["RETRY_OF_HEADER", "CeleryResender", "import_app"]

RETRY_OF_HEADER = "failboard_retry_of"
"""The message header naming the task id a re-sent task is a retry of."""


def import_app(path: str) -> Any:
    """The object at ``"package.module:attribute"``, importing the module.

    Like ``celery -A``, the current directory is tried too when the module is not found."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if os.getcwd() in sys.path or not (exc.name and module_name.startswith(exc.name)):
            raise ConfigError(f"app = {path!r}: cannot import {module_name}: {exc}") from exc
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as again:
            raise ConfigError(f"app = {path!r}: cannot import {module_name}: {again}") from again
    except Exception as exc:  # the project's module raised while importing
        raise ConfigError(
            f"app = {path!r}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"app = {path!r}: {module_name} has no {attribute}") from None
    return found


class CeleryResender:
    """The :class:`~failboard.failures.Resender` of Celery."""

    engine = "celery"

    def __init__(self, project: str, app: str | Any | None, *, keep_task_id: bool = False) -> None:
        if app is None:
            raise ConfigError(
                f'project {project}: set app = "proj.celery:app" (the import path of the '
                "project's Celery app) so that its agent can re-send tasks"
            )
        self.app = import_app(app) if isinstance(app, str) else app
        self.keep_task_id = keep_task_id
        from kombu.exceptions import OperationalError
        from kombu.utils.json import loads

        self._loads: Callable[[str], Any] = loads
        self._unreachable: tuple[type[BaseException], ...] = (OperationalError, OSError)
        self._producer: Any = None  # one producer for the whole action: half the cost per send

    def send(self, failure: StoredFailure) -> str:
        if not failure.name:
            raise ValueError("no task name was recorded")
        args = self._loads(failure.args) if failure.args else []
        kwargs = self._loads(failure.kwargs) if failure.kwargs else {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("the recorded args/kwargs are not a list and a mapping")
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

"""The ``celery`` driver: Celery's final failures, as the recorder writes them into failboard's
failures table (:mod:`failboard.integrations.celery` installs it in the project).

The dashboard reads the table (:class:`~failboard.failures.FailuresReader`); the project's agent
deletes and prunes rows and retries jobs by re-sending them with the project's own Celery app
(the ``app`` option, ``"proj.celery:app"``), then deleting their rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failboard.drivers.celery.resender import CeleryResender
from failboard.failures import (
    CAPABILITIES,
    FailuresExecutor,
    FailuresReader,
    ResendOptions,
    executor_for,
    reader_for,
)

if TYPE_CHECKING:
    from failboard.config import ProjectSettings

__all__ = ["CAPABILITIES", "CeleryResender", "Options", "make_executor", "make_reader"]


class Options(ResendOptions):
    """``table``, ``app`` and ``keep_task_id`` (see :class:`~failboard.failures.ResendOptions`).

    With a new id (the default) the re-sent message carries the original id in its
    ``failboard_retry_of`` header, and a re-run that fails again is recorded with ``retry_of``
    set. ``keep_task_id`` lets a caller waiting on ``AsyncResult(original_id)`` see the re-run.
    """


def make_reader(project: ProjectSettings, timeout: float = 2.0) -> FailuresReader:
    """The dashboard's face: the project's rows of the failures table."""
    return reader_for(project, Options, timeout)


def make_executor(project: ProjectSettings, batch_size: int = 1_000) -> FailuresExecutor:
    """The agent's face: re-sends through the project's Celery app in batches of ``batch_size``."""
    return executor_for(
        project,
        Options,
        lambda options: CeleryResender(project.key, options.app, keep_task_id=options.keep_task_id),
        batch_size,
    )

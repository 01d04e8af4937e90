"""The ``taskiq`` driver: taskiq's final failures, as
:class:`failboard.integrations.taskiq.FailboardMiddleware` writes them into failboard's failures
table.

The dashboard reads the table; the project's agent deletes and prunes rows and retries tasks by
kicking them again, by name and with their labels, through the project's own broker (the
``app`` option, ``"proj.tasks:broker"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failboard.failures import (
    CAPABILITIES,
    FailuresExecutor,
    FailuresReader,
    Resender,
    ResendOptions,
    executor_for,
    reader_for,
)

if TYPE_CHECKING:
    from failboard.config import ProjectSettings

__all__ = ["CAPABILITIES", "Options", "make_executor", "make_reader"]


class Options(ResendOptions):
    """``table``, ``app`` (the broker) and ``keep_task_id`` (see
    :class:`~failboard.failures.ResendOptions`). With a new id (the default) the re-sent task
    carries the original id in its ``failboard_retry_of`` label, and a re-run that fails again is
    recorded with ``retry_of`` set; with ``keep_task_id`` the result backend's entry for the
    original id gets the re-run's result."""


def make_reader(project: ProjectSettings, timeout: float = 2.0) -> FailuresReader:
    """The dashboard's face: the project's rows of the failures table."""
    return reader_for(project, Options, timeout)


def make_executor(project: ProjectSettings, batch_size: int = 1_000) -> FailuresExecutor:
    """The agent's face: kicks through the project's broker. taskiq is imported only then, so
    delete and prune need nothing of it."""

    def resender(options: Options) -> Resender:
        from failboard.drivers.taskiq.resender import TaskiqResender

        return TaskiqResender(project.key, options.app, keep_task_id=options.keep_task_id)

    return executor_for(project, Options, resender, batch_size)

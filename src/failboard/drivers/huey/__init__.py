"""The ``huey`` driver: Huey's final failures, as the recorder writes them into failboard's
failures table (:mod:`failboard.integrations.huey` installs it in the project).

The dashboard reads the table; the project's agent deletes and prunes rows and retries tasks by
re-sending them by name through the project's own Huey instance (the ``app`` option,
``"proj.tasks:huey"``), then deleting their rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failboard.drivers.huey.resender import HueyResender
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

__all__ = ["CAPABILITIES", "HueyResender", "Options", "make_executor", "make_reader"]


class Options(ResendOptions):
    """``table``, ``app`` (the Huey instance) and ``keep_task_id`` (see
    :class:`~failboard.failures.ResendOptions`): with it, ``huey.result(original_id)`` gives the
    re-run's result."""


def make_reader(project: ProjectSettings, timeout: float = 2.0) -> FailuresReader:
    """The dashboard's face: the project's rows of the failures table."""
    return reader_for(project, Options, timeout)


def make_executor(project: ProjectSettings, batch_size: int = 1_000) -> FailuresExecutor:
    """The agent's face: re-sends through the project's Huey instance."""
    return executor_for(
        project,
        Options,
        lambda options: HueyResender(project.key, options.app, keep_task_id=options.keep_task_id),
        batch_size,
    )

"""The ``arq`` driver: arq's final failures, as the recorder writes them into failboard's
failures table (:mod:`failboard.integrations.arq` installs it in the project).

The dashboard reads the table; the project's agent deletes and prunes rows and retries jobs by
enqueuing them again, by function name, on an ArqRedis pool made from the project's
``WorkerSettings`` (the ``app`` option, ``"proj.worker:WorkerSettings"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failboard.drivers.arq.resender import ArqResender
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

__all__ = ["CAPABILITIES", "ArqResender", "Options", "make_executor", "make_reader"]


class Options(ResendOptions):
    """``table``, ``app`` (the ``WorkerSettings``) and ``keep_task_id`` (see
    :class:`~failboard.failures.ResendOptions`): keep it on when job ids are uniqueness keys
    (``_job_id="report-42"``), so that a retry still holds the id against duplicates."""


def make_reader(project: ProjectSettings, timeout: float = 2.0) -> FailuresReader:
    """The dashboard's face: the project's rows of the failures table."""
    return reader_for(project, Options, timeout)


def make_executor(project: ProjectSettings, batch_size: int = 1_000) -> FailuresExecutor:
    """The agent's face: re-sends through an ArqRedis pool of the project's settings."""
    return executor_for(
        project,
        Options,
        lambda options: ArqResender(project.key, options.app, keep_task_id=options.keep_task_id),
        batch_size,
    )

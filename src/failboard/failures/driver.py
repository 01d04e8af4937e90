"""The two faces of a recorder-based driver, built the same way for every engine: a driver module
(``failboard.drivers.huey``...) is its ``Options``, its re-sender, and two calls to these."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from failboard.failures.executor import FailuresExecutor, Resender
from failboard.failures.options import RecorderOptions, options_of
from failboard.failures.reader import FailuresReader

if TYPE_CHECKING:
    from failboard.config import ProjectSettings

__all__ = ["executor_for", "reader_for"]

OptionsT = TypeVar("OptionsT", bound=RecorderOptions)


def reader_for(
    project: ProjectSettings, model: type[RecorderOptions], timeout: float
) -> FailuresReader:
    """The dashboard's face: the project's rows of its failures table."""
    options = options_of(project, model)
    return FailuresReader(project.key, project.url, options.table, timeout=timeout)


def executor_for(
    project: ProjectSettings,
    model: type[OptionsT],
    resender: Callable[[OptionsT], Resender],
    batch_size: int,
) -> FailuresExecutor:
    """The agent's face: ``resender(options)`` is called at the first retry only, so that
    delete and prune never import the project's app."""
    options = options_of(project, model)
    return FailuresExecutor(
        project.key,
        project.url,
        options.table,
        resender=lambda: resender(options),
        batch_size=batch_size,
    )

"""The ``laravel`` driver: Laravel's ``failed_jobs`` table (database failed-job providers).

Reads on PostgreSQL, MariaDB/MySQL and SQLite; retries into the database queue's ``jobs`` table.
The registry calls :func:`make_reader` and :func:`make_executor`; :class:`Options` validates the
project's driver keys (CONTRACT §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from failboard.drivers.laravel.executor import LaravelExecutor
from failboard.drivers.laravel.options import CAPABILITIES, Options
from failboard.drivers.laravel.reader import LaravelReader

if TYPE_CHECKING:
    from failboard.config import ProjectSettings

__all__ = [
    "CAPABILITIES",
    "LaravelExecutor",
    "LaravelReader",
    "Options",
    "make_executor",
    "make_reader",
]


def _options(project: ProjectSettings) -> Options:
    options = project.options
    if isinstance(options, Options):
        return options
    if options is None:
        return Options()
    if isinstance(options, Mapping):
        return Options.model_validate(dict(options))
    return Options.model_validate(options.model_dump())


def make_reader(project: ProjectSettings, timeout: float = 2.0) -> LaravelReader:
    """The dashboard's face: reads the project's failed jobs, each query under ``timeout``."""
    return LaravelReader(project.key, project.url, _options(project), timeout=timeout)


def make_executor(project: ProjectSettings, batch_size: int = 1_000) -> LaravelExecutor:
    """The agent's face: retries, deletes and prunes in batches of ``batch_size``."""
    return LaravelExecutor(project.key, project.url, _options(project), batch_size=batch_size)

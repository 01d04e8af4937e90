"""The ``laravel`` driver: Laravel's ``failed_jobs`` table (database failed-job providers) and
Horizon's Redis records.

Reads on PostgreSQL, MariaDB/MySQL and SQLite (or Horizon's ``failed_jobs`` set); retries into
the database queue's ``jobs`` table, the Redis queue, or through Horizon's retry — natively, or
by running ``php artisan``. The registry calls :func:`make_reader` and :func:`make_executor`;
:class:`Options` validates the project's driver keys (CONTRACT §2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failboard.drivers.laravel.artisan import ArtisanExecutor
from failboard.drivers.laravel.executor import LaravelExecutor
from failboard.drivers.laravel.horizon_reader import HorizonReader
from failboard.drivers.laravel.options import CAPABILITIES, Options
from failboard.drivers.laravel.reader import LaravelReader
from failboard.drivers.registry import options_of

if TYPE_CHECKING:
    from failboard.config import ProjectSettings

__all__ = [
    "CAPABILITIES",
    "ArtisanExecutor",
    "HorizonReader",
    "LaravelExecutor",
    "LaravelReader",
    "Options",
    "make_executor",
    "make_reader",
]


def make_reader(project: ProjectSettings, timeout: float = 2.0) -> LaravelReader | HorizonReader:
    """The dashboard's face: reads the project's failed jobs, each query under ``timeout``
    (from Horizon's Redis records with ``horizon_source = "horizon"``)."""
    options = options_of(project, Options)
    if options.horizon and options.horizon_source == "horizon":
        return HorizonReader(project.key, options, timeout=timeout)
    return LaravelReader(project.key, project.url, options, timeout=timeout)


def make_executor(
    project: ProjectSettings, batch_size: int = 1_000
) -> LaravelExecutor | ArtisanExecutor:
    """The agent's face: retries, deletes and prunes in batches of ``batch_size`` — natively,
    or through ``php artisan`` with ``executor = "artisan"``."""
    options = options_of(project, Options)
    if options.executor == "artisan":
        return ArtisanExecutor(project.key, project.url, options, batch_size=batch_size)
    return LaravelExecutor(project.key, project.url, options, batch_size=batch_size)

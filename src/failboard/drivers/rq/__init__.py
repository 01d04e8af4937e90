"""The ``rq`` driver: RQ's failed-job registries in Redis (rq 2.x and 3.x).

Reads ``<prefix>failed:<queue>`` sorted sets, job hashes and results streams; retries, deletes and
prunes with pipelined, atomic batches. The registry calls :func:`make_reader` and
:func:`make_executor`; :class:`Options` validates the project's driver keys (CONTRACT §2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failboard.drivers.registry import options_of
from failboard.drivers.rq.executor import RqExecutor
from failboard.drivers.rq.options import CAPABILITIES, Options
from failboard.drivers.rq.reader import RqReader

if TYPE_CHECKING:
    from failboard.config import ProjectSettings

__all__ = [
    "CAPABILITIES",
    "Options",
    "RqExecutor",
    "RqReader",
    "make_executor",
    "make_reader",
]


def make_reader(project: ProjectSettings, timeout: float = 2.0) -> RqReader:
    """The dashboard's face: reads the project's failed jobs, each Redis call under ``timeout``."""
    return RqReader(project.key, project.url, options_of(project, Options), timeout=timeout)


def make_executor(project: ProjectSettings, batch_size: int = 1_000) -> RqExecutor:
    """The agent's face: retries, deletes and prunes in pipelined batches of ``batch_size``."""
    return RqExecutor(project.key, project.url, options_of(project, Options), batch_size=batch_size)

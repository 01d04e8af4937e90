"""The ``dramatiq`` driver: Dramatiq's dead letters.

- ``broker = "redis"`` (default): read natively from the broker's Redis (dead-letter sorted sets
  and message hashes, paged in Redis across queues), joined with the final errors that
  :class:`failboard.integrations.dramatiq.FailboardMiddleware` records beside them; retried,
  deleted and pruned with atomic Lua batches.
- ``broker = "rabbitmq"``: the middleware records each final failure into failboard's failures
  table (:mod:`failboard.failures`); the agent re-publishes through the project's RabbitMQ.

Redis and dramatiq are imported only when a reader or an executor is made, so that the
middleware and the options load in a worker that has neither redis-py nor this driver's needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failboard.drivers.dramatiq.options import CAPABILITIES, Options
from failboard.failures.options import options_of

if TYPE_CHECKING:
    from failboard.config import ProjectSettings
    from failboard.drivers.base import Executor, Reader

__all__ = ["CAPABILITIES", "Options", "make_executor", "make_reader"]


def make_reader(project: ProjectSettings, timeout: float = 2.0) -> Reader:
    """The dashboard's face: the dead-letter sets (redis) or the failures table (rabbitmq)."""
    options = options_of(project, Options)
    if options.broker == "rabbitmq":
        from failboard.failures import FailuresReader

        return FailuresReader(project.key, project.url, options.table, timeout=timeout)
    from failboard.drivers.dramatiq.reader import DramatiqReader

    return DramatiqReader(project.key, project.url, options, timeout=timeout)


def make_executor(project: ProjectSettings, batch_size: int = 1_000) -> Executor:
    """The agent's face: atomic Redis batches, or re-publishing through RabbitMQ."""
    options = options_of(project, Options)
    if options.broker == "rabbitmq":
        from failboard.drivers.dramatiq.resender import DramatiqResender
        from failboard.failures import FailuresExecutor

        def resender() -> DramatiqResender:
            return DramatiqResender(project.key, options.broker_url)

        return FailuresExecutor(
            project.key, project.url, options.table, resender=resender, batch_size=batch_size
        )
    from failboard.drivers.dramatiq.executor import DramatiqExecutor

    return DramatiqExecutor(project.key, project.url, options, batch_size=batch_size)

"""Inline agents: the agents of ``agent = "inline"`` projects, run in the dashboard's process.

They are ordinary :class:`~failboard.agent.Agent` loops in threads: they claim from the spool like
any remote agent (the dashboard still only writes spool rows), and a new action wakes its
project's agent at once instead of waiting for the next poll.
"""

from __future__ import annotations

import logging
import threading
from functools import partial

from failboard.agent import Agent
from failboard.board import Board
from failboard.drivers import registry
from failboard.models import Action

__all__ = ["InlineAgents"]

log = logging.getLogger("failboard.inline")


class InlineAgents:
    def __init__(self, board: Board, interval: float = 2.0) -> None:
        self.board = board
        self.interval = interval
        self.agents: dict[str, Agent] = {}
        self._threads: list[threading.Thread] = []
        settings = board.settings
        for project in settings.projects:
            if project.agent != "inline":
                continue
            self.agents[project.key] = Agent(
                board.spool,
                project.key,
                partial(registry.make_executor, project, settings.agent.batch_size),
                name=f"inline:{project.key}",
                limit=settings.agent.limit,
                grace_seconds=settings.agent.grace_seconds,
            )
        board.on_submit(self._wake)

    def _wake(self, action: Action) -> None:
        agent = self.agents.get(action.project)
        if agent is not None:
            agent.wake_event.set()

    def start(self) -> None:
        for key, agent in self.agents.items():
            thread = threading.Thread(
                target=agent.run,
                args=(self.interval,),
                name=f"failboard-inline-{key}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        if self.agents:
            log.info("inline agents running for: %s", ", ".join(self.agents))

    def stop(self, timeout: float = 10.0) -> None:
        for agent in self.agents.values():
            agent.stop()
        for thread in self._threads:
            thread.join(timeout)
        for agent in self.agents.values():
            agent.close()
        self._threads.clear()

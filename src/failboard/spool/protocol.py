"""What an agent needs of the spool, as a Protocol: the direct :class:`~failboard.spool.Spool`
and the HTTP client of the dashboard (:class:`~failboard.agentclient.AgentClient`) both provide
it, so the agent loop runs unchanged against either."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from failboard.models import Action, ActionResult
from failboard.spool.settle import Outcome, Settled

__all__ = ["AgentSpool"]


@runtime_checkable
class AgentSpool(Protocol):
    """The agent's side of the spool. Failures come out as
    :class:`~failboard.exceptions.SpoolError` (the agent logs and retries them);
    :class:`~failboard.exceptions.LeaseLost` when the fence says the claim was taken back."""

    @property
    def lease_seconds(self) -> int:
        """How long a claim lasts without a heartbeat."""
        ...

    def record_agent(self, project: str, agent: str) -> None:
        """Remember that ``agent`` of ``project`` was seen now."""
        ...

    def claim(self, project: str, agent: str, limit: int = 10) -> list[Action]:
        """Claim up to ``limit`` actions of ``project``; each carries its claim token."""
        ...

    def heartbeat(self, action_id: int, token: str) -> datetime:
        """Extend the lease; the new ``lease_until``."""
        ...

    def progress(self, action_id: int, token: str, done: int, total: int | None) -> None:
        """Record progress (also extends the lease)."""
        ...

    def complete(self, action_id: int, token: str, result: ActionResult) -> Action:
        """Record the outcome."""
        ...

    def settle(self, outcomes: Sequence[Outcome]) -> list[Settled]:
        """Record many outcomes at once (one transaction); ``status`` None for an action whose
        claim was taken back."""
        ...

    def fail(self, action_id: int, token: str, error: str, *, retryable: bool = True) -> Action:
        """The action as a whole failed (pending again later, if retryable with attempts left)."""
        ...

    def release(self, action_id: int, token: str, note: str) -> Action:
        """Give the action back untouched: the agent is stopping."""
        ...

    def now(self) -> datetime:
        """The spool's clock (aware UTC)."""
        ...

    def close(self) -> None:
        """Let go of connections."""
        ...

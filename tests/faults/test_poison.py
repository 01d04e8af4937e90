"""A poison action: one that crashes its executor every time it runs. It must not loop
forever: it ends ``failed`` after ``max_attempts``, each attempt in its audit trail, while the
agent and the healthy actions behind it carry on."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from failboard.agent import Agent
from failboard.drivers.base import Progress
from failboard.models import ActionKind, ActionResult, ActionStatus
from failboard.spool import EventKind
from tests.faults.executors import ScriptedExecutor
from tests.faults.support import spool_for
from tests.services import fresh_database

MAX_ATTEMPTS = 3
POISON = "job-of-death"


def _crash_on_poison(kind: ActionKind, job_ids: Sequence[str], progress: Progress) -> ActionResult:
    if POISON in job_ids:
        # What a driver bug or a corrupt row looks like to the agent: not a failboard error.
        raise ZeroDivisionError("division by zero in the payload decoder")
    progress(len(job_ids), len(job_ids))
    return ActionResult(succeeded=len(job_ids))


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_poison_action_ends_failed_after_the_attempt_limit(kind: str) -> None:
    with fresh_database(kind) as url:
        spool = spool_for(url, max_attempts=MAX_ATTEMPTS)
        spool.retry_delay_seconds = 0  # attempts back to back: the test is about their number
        poison = spool.submit("shop", ActionKind.RETRY, {"job_ids": ["a", POISON]})
        healthy = [spool.submit("shop", ActionKind.RETRY, {"job_ids": [f"h{i}"]}) for i in range(3)]
        executor = ScriptedExecutor(_crash_on_poison)
        agent = Agent(spool, "shop", lambda: executor, name="agent-1", limit=10)
        passes = 0
        try:
            while not spool.get(poison.id).status.finished:
                passes += 1
                assert passes <= MAX_ATTEMPTS + 2, "the poison action keeps coming back"
                agent.run_once()
            final = spool.get(poison.id)
            others = [spool.get(a.id) for a in healthy]
            events = spool.events(poison.id)
        finally:
            agent.close()
            spool.close()

        assert final.status is ActionStatus.FAILED
        assert final.attempts == MAX_ATTEMPTS
        assert final.error == "ZeroDivisionError: division by zero in the payload decoder"
        runs = [call for call in executor.calls if POISON in call[1]]
        assert len(runs) == MAX_ATTEMPTS
        assert [a.status for a in others] == [ActionStatus.COMPLETED] * 3
        # The audit trail shows every attempt: claimed, crashed (retry scheduled), ... failed.
        trail = [(e.kind, e.detail.get("attempt")) for e in events]
        assert trail == [
            (EventKind.SUBMITTED, None),
            (EventKind.CLAIMED, 1),
            (EventKind.RETRY_SCHEDULED, 1),
            (EventKind.CLAIMED, 2),
            (EventKind.RETRY_SCHEDULED, 2),
            (EventKind.CLAIMED, 3),
            (EventKind.FAILED, 3),
        ]
        assert all("ZeroDivisionError" in json.dumps(e.detail) for e in events[2::2])

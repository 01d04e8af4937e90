"""An agent that claimed several actions keeps the leases of the ones still waiting behind a
long action: no other agent takes them back, no attempt is used up, nothing runs twice.

Found by the kill storm (tests/faults/test_kill_storm.py): under load, actions queued behind
others in one pass lost their lease unstarted ("lease lost before it started"), were reaped and
re-claimed, each time using up an attempt; after max_attempts such losses an action that no
agent ever crashed on would end "failed: agent lost the lease".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from failboard.agent import Agent
from failboard.drivers.base import Progress
from failboard.models import ActionKind, ActionResult, ActionStatus
from failboard.spool import EventKind
from tests.faults.executors import ScriptedExecutor
from tests.faults.support import spool_for
from tests.services import fresh_database

LEASE = 1


def _slow(kind: ActionKind, job_ids: Sequence[str], progress: Progress) -> ActionResult:
    # Longer than the lease, reporting progress as a real executor does after each batch.
    for step in range(10):
        time.sleep(LEASE * 0.25)
        progress(step + 1, 10)
    return ActionResult(succeeded=len(job_ids))


def test_claims_waiting_behind_a_long_action_keep_their_lease() -> None:
    with fresh_database("postgres") as url:
        spool = spool_for(url, lease_seconds=LEASE)
        actions = [spool.submit("shop", ActionKind.DELETE, {"job_ids": [str(i)]}) for i in range(3)]
        executor = ScriptedExecutor(_slow)
        agent = Agent(spool, "shop", lambda: executor, name="patient", limit=3)
        worker = threading.Thread(target=agent.run_once)
        try:
            worker.start()
            # Well past the lease of the two waiting actions, another agent polls: its claim
            # reaps expired leases first.
            time.sleep(LEASE * 1.5)
            stolen = spool.claim("shop", "thief", 10)
            time.sleep(LEASE * 1.5)
            stolen += spool.claim("shop", "thief", 10)
            worker.join(timeout=60)
            final = [spool.get(a.id) for a in actions]
            kinds = [e.kind for a in actions for e in spool.events(a.id)]
        finally:
            agent.stop()
            worker.join(timeout=60)
            spool.close()
        assert stolen == []
        assert [a.status for a in final] == [ActionStatus.COMPLETED] * 3
        assert [a.attempts for a in final] == [1, 1, 1]
        assert {a.claimed_by for a in final} == {"patient"}
        assert EventKind.REAPED not in kinds
        assert len(executor.calls) == 3

"""SIGTERM in the middle of a long action: the agent finishes the batch in hand, keeps going
for its grace time, hands the rest back and exits 0; another agent finishes the action, and
no job is lost or pushed twice."""

from __future__ import annotations

import re
import time
from pathlib import Path

from failboard.models import ActionKind, ActionStatus
from failboard.spool import EventKind
from tests.faults.support import AgentProcess, agent_config, ledger, seed, spool_for, wait_until
from tests.services import fresh_database

JOBS = 10_000
BATCH = 50
# Short against the rest of the work: at ~5,000 jobs/s the first agent must not finish all
# 10,000 jobs inside its grace time, or there is nothing left to hand back.
GRACE = 0.2
# Past the grace: the batch in hand, the give-back write and the interpreter's exit, on a
# loaded 2-core machine.
MARGIN = 4.0


def test_sigterm_finishes_the_batch_exits_0_and_hands_the_rest_back(tmp_path: Path) -> None:
    with fresh_database("postgres") as url:
        ids = seed(url, JOBS)
        spool = spool_for(url)
        config = agent_config(
            tmp_path, spool_url=url, project_url=url, batch_size=BATCH, grace_seconds=GRACE
        )
        action = spool.submit("shop", ActionKind.RETRY, {"job_ids": ids})
        first = AgentProcess(config, 0)
        second: AgentProcess | None = None
        try:
            wait_until(lambda: spool.get(action.id).progress.done >= BATCH, 60, "progress")
            first.terminate()
            signalled = time.monotonic()
            code = first.process.wait(timeout=GRACE + 30)
            stopped_in = time.monotonic() - signalled
            handed_back = spool.get(action.id)
            assert handed_back.status is ActionStatus.PENDING, (
                f"the first agent did not hand the action back: {handed_back.status}"
            )
            at_stop = ledger(url)
            second = AgentProcess(config, 1)
            wait_until(lambda: spool.get(action.id).status.finished, 60, "the second agent")
            second.terminate()
            assert second.process.wait(timeout=30) == 0, second.output()
            final = spool.get(action.id)
            events = spool.events(action.id)
        finally:
            for agent in (first, second):
                if agent is not None and agent.alive():
                    agent.process.kill()
            spool.close()

        done = sum(at_stop.pushed.values())
        print(
            f"\nSIGTERM after >= {BATCH} jobs: exit {code} in {stopped_in:.2f} s "
            f"(grace {GRACE:g} s); {done} of {JOBS} done, the rest handed back and finished "
            "by another agent"
        )
        assert code == 0, first.output()
        assert stopped_in <= GRACE + MARGIN
        # Handed back, not left to its lease: pending again at once, saying how far it got.
        assert handed_back.status is ActionStatus.PENDING
        assert handed_back.error is not None
        said = re.search(r"agent stopped after (\d+) of (\d+) jobs", handed_back.error)
        assert said is not None, handed_back.error
        # The batch in hand was finished, not cut in half: what the agent says it did is what
        # the queue received, a whole number of batches.
        assert int(said.group(1)) == done and done % BATCH == 0 and 0 < done < JOBS
        kinds = [e.kind for e in events]
        # Handed back, not failed: the interrupted attempt does not count.
        assert EventKind.RELEASED in kinds and EventKind.REAPED not in kinds
        assert EventKind.RETRY_SCHEDULED not in kinds
        assert final.status is ActionStatus.COMPLETED, final.error
        assert final.attempts == 1
        assert final.result is not None
        assert (final.result.succeeded, final.result.missing) == (JOBS - done, done)
        book = ledger(url)
        assert book.duplicates() == {}
        assert sorted(book.pushed) == sorted(ids) and book.still_failed == set()

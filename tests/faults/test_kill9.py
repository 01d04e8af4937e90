"""kill -9 an agent in the middle of a 10,000-job retry: the action is taken back after its
lease by another agent and finishes; every job is pushed exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from failboard.db import create_engine
from failboard.models import ActionKind, ActionStatus
from failboard.spool import EventKind
from tests.faults.support import AgentProcess, agent_config, ledger, seed, spool_for, wait_until
from tests.services import fresh_database

JOBS = 10_000
LEASE = 5
BATCH = 50  # 200 store transactions: room to land the kill between two of them


def test_kill9_mid_retry_is_taken_back_and_every_job_is_pushed_once(tmp_path: Path) -> None:
    with fresh_database("postgres") as url:
        ids = seed(url, JOBS)
        spool = spool_for(url, lease_seconds=LEASE)
        config = agent_config(
            tmp_path, spool_url=url, project_url=url, lease_seconds=LEASE, batch_size=BATCH
        )
        action = spool.submit("shop", ActionKind.RETRY, {"job_ids": ids}, requested_by="test")
        first = AgentProcess(config, 0)
        second: AgentProcess | None = None
        try:
            # Mid-way: some batches committed, most not. Watched in the store itself, not through
            # the action's progress (written at most twice a second): on a quiet machine the
            # whole retry takes about as long.
            store = create_engine(url)

            def midway() -> bool:
                with store.connect() as connection:
                    pushed = connection.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one()
                return int(pushed) >= 5 * BATCH

            try:
                wait_until(midway, 40, "the first agent to be mid-way", every=0.01)
            finally:
                store.dispose()
            first.kill9()
            killed_at = time.monotonic()
            at_kill = ledger(url)  # what had committed: the open batch rolled back with the kill
            done_at_kill = sum(at_kill.pushed.values())
            assert 0 < done_at_kill < JOBS, f"not mid-way: {done_at_kill} jobs done at the kill"
            assert spool.get(action.id).status is ActionStatus.PROCESSING

            second = AgentProcess(config, 1)
            wait_until(
                lambda: (spool.get(action.id).claimed_by or "").endswith(second.name_suffix),
                LEASE + 15,
                "the second agent to take the action back",
                every=0.05,
            )
            reclaimed = time.monotonic() - killed_at
            wait_until(lambda: spool.get(action.id).status.finished, 40, "the action to end")
            finished = time.monotonic() - killed_at
            final = spool.get(action.id)
            events = spool.events(action.id)
            second.terminate()
            assert second.process.wait(timeout=15) == 0, second.output()
        finally:
            for agent in (first, second):
                if agent is not None and agent.alive():
                    agent.process.kill()
            spool.close()

        book = ledger(url)
        print(
            f"\nkill -9 after {done_at_kill} of {JOBS} jobs; taken back after {reclaimed:.1f} s "
            f"(lease {LEASE} s); action completed {finished:.1f} s after the kill"
        )
        # The ledger: every job pushed exactly once, none left behind.
        assert book.duplicates() == {}
        assert sorted(book.pushed) == sorted(ids)
        assert book.still_failed == set()
        assert final.status is ActionStatus.COMPLETED, final.error
        assert final.result is not None
        # The second run found the jobs the first one had committed already gone.
        assert final.result.missing == done_at_kill
        assert final.result.succeeded == JOBS - done_at_kill
        assert final.result.failed == 0
        assert final.attempts == 2
        kinds = [e.kind for e in events]
        assert kinds == [
            EventKind.SUBMITTED,
            EventKind.CLAIMED,
            EventKind.REAPED,
            EventKind.CLAIMED,
            EventKind.COMPLETED,
        ]
        reaped = events[2]
        assert str(reaped.detail["claimed_by"]).endswith(first.name_suffix)
        # Taken back no sooner than the lease allows and no later than lease + one poll (plus
        # the second agent's start-up on a loaded machine).
        assert reclaimed <= LEASE + 8

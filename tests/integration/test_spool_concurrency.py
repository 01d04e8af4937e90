"""Agents racing for one project's actions on real databases: nothing claimed twice, nothing lost.

Every agent has its own Spool (its own engine and connections, as separate processes would) and
writes what it claimed into a ledger. A tenth of the actions fail once (retryable, no delay), so
re-claims race too. The ledger must hold each (action, attempt) exactly once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from failboard.models import ActionResult, ActionStatus
from failboard.spool import Spool

ACTIONS = 500
AGENTS = 4


def test_concurrent_agents_claim_every_action_exactly_once(db_url: str) -> None:
    with Spool(db_url, retry_delay_seconds=0) as spool:
        spool.migrate()
        ids = [spool.submit("shop", "retry", {"job_ids": [str(n)]}).id for n in range(ACTIONS)]
        others = [spool.submit("blog", "retry", {"job_ids": [str(n)]}).id for n in range(20)]

    ledger: list[tuple[int, int, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(AGENTS)
    stop = threading.Event()  # one agent's failure ends the run instead of waiting out leases

    def agent(name: str, seed: int) -> None:
        rng = random.Random(seed)
        try:
            with Spool(db_url, retry_delay_seconds=0) as mine:
                start.wait()
                while not stop.is_set():
                    claimed = mine.claim("shop", name, limit=rng.randint(1, 8))
                    if not claimed:
                        # Stop once nothing is open: an action another agent still holds may
                        # yet come back for a retry.
                        if mine.open_counts().get("shop", 0) == 0:
                            return
                        time.sleep(0.005)
                        continue
                    with lock:
                        ledger.extend((a.id, a.attempts, name) for a in claimed)
                    for action in claimed:
                        assert action.claim_token is not None
                        if action.attempts == 1 and action.id % 10 == 0:
                            mine.fail(action.id, action.claim_token, "transient")
                        else:
                            mine.complete(action.id, action.claim_token, ActionResult(succeeded=1))
                    # Real agents spend time on their actions; without a pause one thread can win
                    # every claim on SQLite (a single writer) and there would be no race to check.
                    time.sleep(0.002)
        except BaseException as exc:  # reported by the assertion below, not by the thread
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=agent, args=(f"agent-{n}", n), daemon=True) for n in range(AGENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "an agent hung"
    assert errors == []

    claims = Counter((action_id, attempt) for action_id, attempt, _ in ledger)
    duplicates = {key: n for key, n in claims.items() if n > 1}
    assert duplicates == {}
    retried = {i for i in ids if i % 10 == 0}
    expected = {(i, 1) for i in ids} | {(i, 2) for i in retried}
    assert set(claims) == expected  # nothing lost, nothing extra
    assert len({name for _, _, name in ledger}) > 1, "one agent did all the work"

    with Spool(db_url) as spool:
        done = spool.list(project="shop", limit=1000)
        assert len(done) == ACTIONS
        assert {a.status for a in done} == {ActionStatus.COMPLETED}
        assert all(a.attempts == (2 if a.id in retried else 1) for a in done)
        assert {a.status for a in spool.list(project="blog")} == {ActionStatus.PENDING}
        assert sorted(a.id for a in spool.list(project="blog")) == others
        # The audit trail agrees with the ledger: one "claimed" event per claim.
        for action_id in (ids[0], ids[10], ids[-1]):
            claimed_events = [e for e in spool.events(action_id) if e.kind == "claimed"]
            assert len(claimed_events) == (2 if action_id in retried else 1)

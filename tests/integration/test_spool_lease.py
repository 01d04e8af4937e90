"""Leases on real databases: fencing, expiry, the reaper and bounded attempts."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from failboard.db import utcnow
from failboard.exceptions import LeaseLost, NotFound
from failboard.models import Action, ActionResult, ActionStatus
from failboard.spool import Spool


@pytest.fixture
def spool(db_url: str) -> Iterator[Spool]:
    with Spool(db_url, lease_seconds=30, max_attempts=3) as spool:
        spool.migrate()
        yield spool


def expire(spool: Spool, action_id: int) -> None:
    """Let an action's lease run out now (rather than waiting for it)."""
    a = spool.tables.actions
    with spool.engine.begin() as connection:
        connection.execute(a.update().where(a.c.id == action_id).values(lease_until=utcnow(-5)))


def snapshot(spool: Spool, action_id: int) -> tuple[dict[str, object], int]:
    """The whole row (token included) and the number of its events."""
    a = spool.tables.actions
    with spool.engine.connect() as connection:
        row = connection.execute(sa.select(a).where(a.c.id == action_id)).mappings().one()
    return dict(row), len(spool.events(action_id))


def claim_one(spool: Spool, agent: str = "host:1") -> tuple[Action, str]:
    [action] = spool.claim("shop", agent)
    assert action.claim_token is not None
    return action, action.claim_token


def test_heartbeat_extends_the_lease(spool: Spool) -> None:
    spool.submit("shop", "prune", {"hours": 1})
    action, token = claim_one(spool)
    assert action.lease_until is not None
    until = spool.heartbeat(action.id, token)
    assert until >= action.lease_until
    assert until.tzinfo is not None
    assert spool.get(action.id).lease_until == until


@pytest.mark.parametrize("operation", ["heartbeat", "progress", "complete", "fail"])
def test_a_wrong_token_is_fenced_out_and_changes_nothing(spool: Spool, operation: str) -> None:
    spool.submit("shop", "prune", {"hours": 1})
    action, _token = claim_one(spool)
    before = snapshot(spool, action.id)
    with pytest.raises(LeaseLost, match=f"action {action.id}"):
        run(spool, operation, action.id, "not-the-token")
    assert snapshot(spool, action.id) == before


def test_fenced_operations_on_an_unknown_action_are_not_found(spool: Spool) -> None:
    with pytest.raises(NotFound):
        spool.complete(4242, "token", ActionResult())


def test_an_expired_lease_is_reaped_and_the_old_holder_fenced_out(spool: Spool) -> None:
    spool.submit("shop", "prune", {"hours": 1})
    action, old = claim_one(spool, "host:1")
    expire(spool, action.id)
    assert spool.reap("blog") == 0  # another project's reaper leaves it alone
    assert spool.reap("shop") == 1
    reaped = spool.get(action.id)
    assert reaped.status is ActionStatus.PENDING
    assert reaped.lease_until is None
    event = spool.events(action.id)[-1]
    assert (event.kind, event.actor) == ("reaped", "reaper")
    assert event.detail == {"claimed_by": "host:1", "attempt": 1, "outcome": "pending"}

    again, new = claim_one(spool, "host:2")
    assert (again.id, again.attempts) == (action.id, 2)
    before = snapshot(spool, action.id)
    for operation in ("heartbeat", "progress", "complete", "fail"):
        with pytest.raises(LeaseLost, match="claimed again by host:2"):
            run(spool, operation, action.id, old)
    assert snapshot(spool, action.id) == before
    done = spool.complete(action.id, new, ActionResult(succeeded=1))
    assert done.status is ActionStatus.COMPLETED
    with pytest.raises(LeaseLost, match="it is completed now"):
        spool.heartbeat(action.id, new)


def test_claim_takes_back_expired_leases_itself(spool: Spool) -> None:
    spool.submit("shop", "prune", {"hours": 1})
    action, _old = claim_one(spool, "host:1")
    assert spool.claim("shop", "host:2") == []
    expire(spool, action.id)
    again, _new = claim_one(spool, "host:2")
    assert again.id == action.id
    assert [e.kind for e in spool.events(action.id)] == [
        "submitted",
        "claimed",
        "reaped",
        "claimed",
    ]


def test_a_real_lease_runs_out_on_the_database_clock(db_url: str) -> None:
    with Spool(db_url, lease_seconds=1) as spool:
        spool.migrate()
        spool.submit("shop", "prune", {"hours": 1})
        action, token = claim_one(spool)
        spool.heartbeat(action.id, token)  # a live lease survives the reaper
        assert spool.reap() == 0
        time.sleep(1.2)
        assert spool.reap() == 1
        with pytest.raises(LeaseLost):
            spool.heartbeat(action.id, token)


def test_attempts_are_bounded_then_the_action_fails(spool: Spool) -> None:
    spool.submit("shop", "prune", {"hours": 1})
    for attempt in (1, 2, 3):
        action, _token = claim_one(spool, f"host:{attempt}")
        assert action.attempts == attempt
        expire(spool, action.id)
        assert spool.reap() == 1
    dead = spool.get(action.id)
    assert dead.status is ActionStatus.FAILED
    assert dead.error == "agent lost the lease 3 times (crashed or stopped?); giving up"
    assert dead.finished_at is not None
    assert spool.claim("shop", "host:4") == []
    assert spool.events(action.id)[-1].detail["outcome"] == "failed"


def test_the_reaper_leaves_live_leases_and_other_states_alone(spool: Spool) -> None:
    live = spool.submit("shop", "prune", {"hours": 1})
    spool.submit("shop", "prune", {"hours": 2})
    claimed = spool.claim("shop", "host:1", limit=1)
    assert [a.id for a in claimed] == [live.id]
    assert spool.reap() == 0
    assert spool.get(live.id).status is ActionStatus.PROCESSING


def run(spool: Spool, operation: str, action_id: int, token: str) -> object:
    if operation == "heartbeat":
        return spool.heartbeat(action_id, token)
    if operation == "progress":
        return spool.progress(action_id, token, 1, 2)
    if operation == "complete":
        return spool.complete(action_id, token, ActionResult(succeeded=1))
    return spool.fail(action_id, token, "boom")


def test_release_hands_the_action_back_without_using_an_attempt(spool: Spool) -> None:
    spool.submit("shop", "prune", {"hours": 1})
    action, token = claim_one(spool)
    released = spool.release(action.id, token, "agent stopped after 3 of 10 jobs")
    assert released.status is ActionStatus.PENDING
    assert released.attempts == 0
    assert released.error == "agent stopped after 3 of 10 jobs"
    assert [e.kind for e in spool.events(action.id)][-1] == "released"
    with pytest.raises(LeaseLost):
        spool.release(action.id, token, "again")
    # Available again at once, for any agent.
    (again,) = spool.claim("shop", "host:2", 1)
    assert again.id == action.id and again.attempts == 1

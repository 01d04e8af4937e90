"""The spool's operations on real databases: submit, list, claim, finish, cancel, prune."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from failboard.db import utcnow
from failboard.exceptions import ActionConflict, InvalidRequest, NotFound
from failboard.models import ActionKind, ActionResult, ActionStatus
from failboard.spool import Spool


@pytest.fixture
def spool(db_url: str) -> Iterator[Spool]:
    with Spool(db_url, retry_delay_seconds=30) as spool:
        spool.migrate()
        yield spool


def kinds(spool: Spool, action_id: int) -> list[str]:
    return [event.kind for event in spool.events(action_id)]


def test_submit_stores_a_pending_action(spool: Spool) -> None:
    before = spool.now()
    action = spool.submit("shop", "retry", {"job_ids": ["42", "43", "42"]}, requested_by="ops")
    assert action.project == "shop"
    assert action.action is ActionKind.RETRY
    assert action.params == {"job_ids": ["42", "43"]}
    assert action.status is ActionStatus.PENDING
    assert action.requested_by == "ops"
    assert action.attempts == 0
    assert action.max_attempts == 3
    assert action.claim_token is None
    assert action.created_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= action.created_at <= spool.now()
    assert spool.get(action.id) == action
    [event] = spool.events(action.id)
    assert (event.kind, event.actor, event.action_id) == ("submitted", "ops", action.id)


def test_retry_queue_defaults_failed_before_to_the_db_clock(spool: Spool) -> None:
    before = spool.now()
    action = spool.submit("shop", ActionKind.RETRY_QUEUE, {"queue": None})
    moment = action.params["failed_before"]
    assert moment.endswith("Z")
    assert action.params["queue"] is None
    assert before.isoformat()[:16] <= moment[:16]


def test_get_unknown_action_is_not_found(spool: Spool) -> None:
    with pytest.raises(NotFound, match="action 999 not found"):
        spool.get(999)


def test_the_same_idempotency_key_gives_the_same_action(spool: Spool) -> None:
    first = spool.submit("shop", "delete", {"job_ids": ["1"]}, idempotency_key="click-1")
    again = spool.submit("shop", "delete", {"job_ids": ["1"]}, idempotency_key="click-1")
    assert again.id == first.id
    assert len(spool.list()) == 1
    with pytest.raises(ActionConflict, match="idempotency_key"):
        spool.submit("blog", "delete", {"job_ids": ["1"]}, idempotency_key="click-1")
    with pytest.raises(ActionConflict, match="idempotency_key"):
        spool.submit("shop", "retry", {"job_ids": ["1"]}, idempotency_key="click-1")


def test_racing_submits_with_one_key_make_one_action(spool: Spool) -> None:
    start = threading.Barrier(4)
    ids: list[int] = []

    def submit() -> None:
        start.wait()
        ids.append(spool.submit("shop", "prune", {"hours": 2}, idempotency_key="race").id)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(ids) == 4
    assert len(set(ids)) == 1
    assert len(spool.list()) == 1


def test_list_is_newest_first_and_filters(spool: Spool) -> None:
    ids = [spool.submit(p, "prune", {"hours": 1}).id for p in ("shop", "blog", "shop", "mail")]
    assert [a.id for a in spool.list()] == ids[::-1]
    assert [a.id for a in spool.list(project="shop")] == [ids[2], ids[0]]
    assert [a.id for a in spool.list(project=["blog", "mail"])] == [ids[3], ids[1]]
    assert spool.list(project=[]) == []
    assert [a.id for a in spool.list(limit=2)] == [ids[3], ids[2]]
    assert [a.id for a in spool.list(before_id=ids[2])] == [ids[1], ids[0]]
    spool.cancel(ids[1])
    assert [a.id for a in spool.list(status="cancelled")] == [ids[1]]
    assert [a.id for a in spool.list(status=ActionStatus.PENDING, project="mail")] == [ids[3]]


def test_claim_takes_only_its_projects_actions_oldest_first(spool: Spool) -> None:
    shop = [spool.submit("shop", "retry", {"job_ids": [str(n)]}).id for n in range(5)]
    spool.submit("blog", "retry", {"job_ids": ["1"]})
    first = spool.claim("shop", "host:1", limit=2)
    assert [a.id for a in first] == shop[:2]
    rest = spool.claim("shop", "host:2", limit=10)
    assert [a.id for a in rest] == shop[2:]
    assert spool.claim("shop", "host:3") == []
    for action in first + rest:
        assert action.status is ActionStatus.PROCESSING
        assert action.attempts == 1
        assert action.claim_token
        assert action.lease_until is not None
        assert action.claimed_at is not None
        assert action.lease_until > action.claimed_at
    assert first[0].claimed_by == "host:1"
    assert len({a.claim_token for a in first + rest}) == 5  # one token per action
    assert spool.get(shop[0]).claim_token is None  # readers never see the capability
    assert spool.open_counts() == {"shop": 5, "blog": 1}
    assert kinds(spool, shop[0]) == ["submitted", "claimed"]


def test_complete_records_the_result(spool: Spool) -> None:
    spool.submit("shop", "retry", {"job_ids": ["1", "2"]})
    [claimed] = spool.claim("shop", "host:1")
    assert claimed.claim_token is not None
    spool.progress(claimed.id, claimed.claim_token, 1, 2)
    assert spool.get(claimed.id).progress.model_dump() == {"done": 1, "total": 2}
    done = spool.complete(claimed.id, claimed.claim_token, ActionResult(succeeded=1, missing=1))
    assert done.status is ActionStatus.COMPLETED
    assert done.result == ActionResult(succeeded=1, missing=1)
    assert done.error is None
    assert done.finished_at is not None
    assert kinds(spool, claimed.id) == ["submitted", "claimed", "completed"]
    assert spool.open_counts() == {}


def test_complete_with_failed_jobs_ends_failed_with_a_summary(spool: Spool) -> None:
    spool.submit("shop", "retry", {"job_ids": [str(n) for n in range(10)]})
    [claimed] = spool.claim("shop", "host:1")
    assert claimed.claim_token is not None
    result = ActionResult(succeeded=7, failed=3, errors=("4: SMTP timeout", "5: boom"))
    done = spool.complete(claimed.id, claimed.claim_token, result)
    assert done.status is ActionStatus.FAILED
    assert done.error == "3 of 10 jobs failed: 4: SMTP timeout; 5: boom"
    assert done.result == result
    assert kinds(spool, claimed.id)[-1] == "failed"


def test_a_retryable_failure_comes_back_after_a_delay(spool: Spool) -> None:
    action = spool.submit("shop", "prune", {"hours": 1})
    [claimed] = spool.claim("shop", "host:1")
    assert claimed.claim_token is not None
    back = spool.fail(action.id, claimed.claim_token, "store unreachable")
    assert back.status is ActionStatus.PENDING
    assert back.error == "store unreachable"
    assert back.lease_until is None
    assert spool.claim("shop", "host:1") == []  # not before its retry delay
    retry = spool.events(action.id)[-1]
    assert retry.kind == "retry_scheduled"
    assert retry.detail["delay_seconds"] == 30
    make_available(spool, action.id)
    [again] = spool.claim("shop", "host:2")
    assert again.attempts == 2
    assert again.claim_token not in (None, claimed.claim_token)
    assert again.claim_token is not None
    failed = spool.fail(action.id, again.claim_token, "bad params", retryable=False)
    assert failed.status is ActionStatus.FAILED
    assert failed.error == "bad params"
    assert kinds(spool, action.id) == [
        "submitted",
        "claimed",
        "retry_scheduled",
        "claimed",
        "failed",
    ]


def test_a_retryable_failure_on_the_last_attempt_is_final(db_url: str) -> None:
    with Spool(db_url, max_attempts=1) as spool:
        spool.migrate()
        action = spool.submit("shop", "prune", {"hours": 1})
        [claimed] = spool.claim("shop", "host:1")
        assert claimed.claim_token is not None
        failed = spool.fail(action.id, claimed.claim_token, "store unreachable")
        assert failed.status is ActionStatus.FAILED
        assert failed.finished_at is not None


def test_cancel_only_while_pending(spool: Spool) -> None:
    waiting = spool.submit("shop", "prune", {"hours": 1})
    cancelled = spool.cancel(waiting.id, by="ops")
    assert cancelled.status is ActionStatus.CANCELLED
    assert cancelled.finished_at is not None
    [event] = spool.events(waiting.id)[1:]
    assert (event.kind, event.actor) == ("cancelled", "ops")
    with pytest.raises(ActionConflict, match="is cancelled"):
        spool.cancel(waiting.id)
    spool.submit("shop", "prune", {"hours": 2})
    [claimed] = spool.claim("shop", "host:1")
    with pytest.raises(ActionConflict, match="is processing: only a pending action"):
        spool.cancel(claimed.id)
    with pytest.raises(NotFound):
        spool.cancel(12345)
    assert spool.claim("shop", "host:1") == []  # the cancelled one is never claimed


def test_prune_finished_keeps_open_actions_and_all_events(spool: Spool) -> None:
    old = spool.submit("shop", "prune", {"hours": 1})
    spool.cancel(old.id)
    spool.submit("shop", "prune", {"hours": 2})
    assert spool.prune_finished(timedelta(hours=1)) == 0
    assert spool.prune_finished(timedelta(0)) == 1
    with pytest.raises(NotFound):
        spool.get(old.id)
    assert kinds(spool, old.id) == ["submitted", "cancelled"]
    assert [a.params for a in spool.list()] == [{"hours": 2}]


def test_open_actions_for_jobs_finds_open_retries_and_deletes(spool: Spool) -> None:
    retry = spool.submit("shop", "retry", {"job_ids": ["1", "2"]})
    delete = spool.submit("shop", "delete", {"job_ids": ["3"]})
    done = spool.submit("shop", "retry", {"job_ids": ["4"]})
    spool.cancel(done.id)
    spool.submit("blog", "retry", {"job_ids": ["5"]})
    found = spool.open_actions_for_jobs("shop", ["1", "3", "4", "5", "6"])
    assert {job: action.id for job, action in found.items()} == {"1": retry.id, "3": delete.id}
    assert spool.open_actions_for_jobs("shop", []) == {}


def test_agents_last_seen_per_project(spool: Spool) -> None:
    assert spool.agents_last_seen() == {}
    spool.record_agent("shop", "host:1")
    first = spool.agents_last_seen()["shop"]
    spool.record_agent("shop", "host:2")
    spool.record_agent("shop", "host:1")
    spool.record_agent("blog", "host:9")
    seen = spool.agents_last_seen()
    assert set(seen) == {"shop", "blog"}
    assert seen["shop"] >= first
    assert abs(seen["shop"] - spool.now()) < timedelta(seconds=5)


def test_racing_agents_record_themselves_once(spool: Spool) -> None:
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def record() -> None:
        start.wait()
        try:
            spool.record_agent("shop", "host:1")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert list(spool.agents_last_seen()) == ["shop"]


def test_progress_refuses_nonsense(spool: Spool) -> None:
    with pytest.raises(InvalidRequest, match="done"):
        spool.progress(1, "token", -1, 3)


def make_available(spool: Spool, action_id: int) -> None:
    """Skip an action's retry delay (the test cannot wait for it)."""
    a = spool.tables.actions
    with spool.engine.begin() as connection:
        connection.execute(a.update().where(a.c.id == action_id).values(available_at=utcnow(-1)))

"""``Spool.settle``: the outcomes of many claimed actions in one transaction, each fenced."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from failboard.models import ActionKind, ActionResult, ActionStatus
from failboard.spool import Outcome, Spool


@pytest.fixture
def spool(db_url: str) -> Iterator[Spool]:
    with Spool(db_url, retry_delay_seconds=30, max_attempts=2) as spool:
        spool.migrate()
        yield spool


def test_settle_records_every_kind_of_outcome_with_one_audit_entry_per_kind(spool: Spool) -> None:
    ids = [spool.submit("shop", ActionKind.RETRY, {"job_ids": [str(i)]}).id for i in range(6)]
    claimed = spool.claim("shop", "agent-1", 10)
    assert [a.id for a in claimed] == ids
    tokens = {a.id: a.claim_token or "" for a in claimed}
    head_before, _ = spool.audit.head()
    answers = spool.settle(
        [
            Outcome(action_id=ids[0], claim_token=tokens[ids[0]], result=ActionResult(succeeded=1)),
            Outcome(action_id=ids[1], claim_token=tokens[ids[1]], result=ActionResult(missing=1)),
            Outcome(
                action_id=ids[2],
                claim_token=tokens[ids[2]],
                result=ActionResult(failed=1, errors=("2: boom",)),
            ),
            Outcome(
                action_id=ids[3], claim_token=tokens[ids[3]], error="store down", retryable=True
            ),
            Outcome(action_id=ids[4], claim_token=tokens[ids[4]], error="unsupported"),
            Outcome(
                action_id=ids[5], claim_token="not-the-token", result=ActionResult(succeeded=1)
            ),
        ]
    )
    assert [(a.action_id, a.status) for a in answers] == [
        (ids[0], ActionStatus.COMPLETED),
        (ids[1], ActionStatus.COMPLETED),
        (ids[2], ActionStatus.FAILED),
        (ids[3], ActionStatus.PENDING),
        (ids[4], ActionStatus.FAILED),
        (ids[5], None),  # fenced out: nothing written for it
    ]
    first = spool.get(ids[0])
    assert first.result == ActionResult(succeeded=1) and first.finished_at is not None
    assert first.progress.done == 1 and first.progress.total == 1
    assert first.lease_until is None and first.claimed_by == "agent-1"
    assert spool.get(ids[2]).error == "1 of 1 jobs failed: 2: boom"
    retried = spool.get(ids[3])
    assert retried.error == "store down" and retried.lease_until is None
    assert retried.finished_at is None and retried.attempts == 1
    assert spool.get(ids[4]).error == "unsupported" and spool.get(ids[4]).result is None
    untouched = spool.get(ids[5])
    assert untouched.status is ActionStatus.PROCESSING and untouched.result is None
    assert [e.kind for e in spool.events(ids[0])] == ["submitted", "claimed", "completed"]
    assert [e.kind for e in spool.events(ids[3])][-1] == "retry_scheduled"
    assert spool.events(ids[3])[-1].detail["delay_seconds"] == 30
    assert [e.kind for e in spool.events(ids[5])] == ["submitted", "claimed"]
    # One audit entry per kind of outcome (completed, failed, retry_scheduled), listing them.
    head_after, _ = spool.audit.head()
    assert head_after - head_before == 3
    entries = {e.event: e for e in spool.audit.entries(limit=3)}
    assert set(entries) == {"action.completed", "action.failed", "action.retry_scheduled"}
    assert set(entries["action.completed"].detail["actions"]) == {str(ids[0]), str(ids[1])}
    assert entries["action.retry_scheduled"].action_id == ids[3]
    assert spool.audit.verify().ok
    # Settled once: the same outcome again is fenced out (the action is no longer processing).
    again = spool.settle(
        [Outcome(action_id=ids[0], claim_token=tokens[ids[0]], result=ActionResult())]
    )
    assert again[0].status is None
    assert spool.get(ids[0]).result == ActionResult(succeeded=1)


def test_settle_answers_none_for_another_projects_action(spool: Spool) -> None:
    theirs = spool.submit("billing", ActionKind.PRUNE, {"hours": 1})
    (claim,) = spool.claim("billing", "agent-b", 1)
    outcome = Outcome(action_id=theirs.id, claim_token=claim.claim_token or "", error="x")
    assert spool.settle([outcome], project="shop")[0].status is None
    assert spool.get(theirs.id).status is ActionStatus.PROCESSING
    assert spool.settle([outcome], project="billing")[0].status is ActionStatus.FAILED
    assert spool.settle([]) == []

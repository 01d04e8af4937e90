"""How a pass is cut into units and how a grouped call's answers become each action's result."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from failboard.agent_pass import QUICK_PASS, SLOW_PASS, ClaimSize, split, units
from failboard.drivers.base import Capabilities, JobOutcome
from failboard.models import Action, ActionKind, ActionStatus

RETRY, DELETE, PRUNE = ActionKind.RETRY, ActionKind.DELETE, ActionKind.PRUNE


def _action(id: int, kind: ActionKind, params: dict[str, Any]) -> Action:
    return Action(
        id=id,
        project="p",
        action=kind,
        params=params,
        status=ActionStatus.PROCESSING,
        created_at=datetime.now(UTC),
        claim_token=f"t{id}",
    )


class _Grouped:
    project = "p"

    def __init__(self, group_size: int = 3, grouped: bool = True) -> None:
        self.group_size = group_size
        self.capabilities = Capabilities(grouped=grouped)

    def retry_each(self, job_ids: Sequence[str]) -> dict[str, JobOutcome]:
        raise NotImplementedError

    def delete_each(self, job_ids: Sequence[str]) -> dict[str, JobOutcome]:
        raise NotImplementedError


def _ids(cut: list[list[Action]]) -> list[list[int]]:
    return [[action.id for action in unit] for unit in cut]


def test_consecutive_small_actions_of_one_kind_are_grouped_up_to_the_group_size() -> None:
    actions = [
        _action(1, RETRY, {"job_ids": ["a"]}),
        _action(2, RETRY, {"job_ids": ["b", "a"]}),  # "a" again: still 2 distinct ids
        _action(3, RETRY, {"job_ids": ["c"]}),
        _action(4, RETRY, {"job_ids": ["d"]}),  # 4 distinct ids would exceed 3
        _action(5, DELETE, {"job_ids": ["e"]}),  # another kind ends the run
        _action(6, PRUNE, {"hours": 1}),  # never grouped
        _action(7, RETRY, {"job_ids": ["f", "g", "h", "i"]}),  # bigger than a group: alone
        _action(8, RETRY, {"job_ids": []}),  # malformed: alone, fails as it always did
    ]
    assert _ids(units(actions, _Grouped())) == [[1, 2, 3], [4], [5], [6], [7], [8]]  # type: ignore[arg-type]
    # Without the face (or without the flag), every action runs alone.
    assert _ids(units(actions, _Grouped(grouped=False))) == [[i] for i in range(1, 9)]  # type: ignore[arg-type]
    assert _ids(units(actions, None)) == [[i] for i in range(1, 9)]


def test_split_counts_each_job_as_if_the_actions_ran_in_claim_order() -> None:
    actions = [
        _action(1, RETRY, {"job_ids": ["a", "gone"]}),
        _action(2, RETRY, {"job_ids": ["a", "bad", "b"]}),
        _action(3, RETRY, {"job_ids": ["bad", "b"]}),
    ]
    answers = {
        "a": JobOutcome("succeeded", new_id="a2"),
        "gone": JobOutcome("missing"),
        "bad": JobOutcome("failed", "no such connection", name="uuid-bad"),
        "b": JobOutcome("succeeded"),
    }
    results = split(actions, answers)
    first, second, third = results[1], results[2], results[3]
    assert (first.succeeded, first.missing, first.failed) == (1, 1, 0)
    assert first.details == {"lineage": {"a": "a2"}}
    # "a" was done by the first action: gone by the time the second would have run.
    assert (second.succeeded, second.missing, second.failed) == (1, 1, 1)
    assert second.errors == ("uuid-bad: no such connection",)
    # A job that failed is still there: it fails again for every action naming it.
    assert (third.succeeded, third.missing, third.failed) == (0, 1, 1)
    # A job the executor did not answer for is failed, never silently succeeded.
    lone = split([_action(4, DELETE, {"job_ids": ["x"]})], {})
    assert lone[4].failed == 1


def test_claims_grow_while_full_passes_are_quick_up_to_the_limit() -> None:
    size = ClaimSize(100)
    seen = [size.now]
    for _ in range(6):
        size.passed(size.now, 0.2)
        seen.append(size.now)
    assert seen == [10, 20, 40, 80, 100, 100, 100]


def test_a_slow_pass_or_an_empty_claim_starts_small_again() -> None:
    size = ClaimSize(100)
    for _ in range(3):
        size.passed(size.now, 0.2)
    assert size.now == 80
    size.passed(80, SLOW_PASS + 1)  # a long retry_queue held the rest of the claim
    assert size.now == 10
    for _ in range(2):
        size.passed(size.now, 0.2)
    size.passed(3, 0.1)  # the backlog ran dry: the size it reached stays...
    assert size.now == 40
    size.passed(0, 0.0)  # ...until a claim finds nothing
    assert size.now == 10


def test_a_pass_neither_quick_nor_slow_keeps_the_size_and_a_small_limit_is_kept() -> None:
    size = ClaimSize(100)
    size.passed(10, QUICK_PASS + 0.5)
    assert size.now == 10
    small = ClaimSize(2)
    small.passed(2, 0.1)
    assert (small.first, small.now) == (2, 2)

"""The bookkeeping of one agent pass: the outcomes waiting to be settled, the heartbeat that keeps
every claim of the pass alive, and how the pass is cut into units to run.

A unit is one action, or a run of consecutive small ``retry`` (or ``delete``) actions that a
:class:`~failboard.drivers.base.GroupedExecutor` does in one call — one store transaction
instead of one per action. Only *consecutive* actions of one kind are grouped, so the jobs of
a pass are acted on in claim order as before: a job named by two actions of a group is done
for the first and ``missing`` for the second, exactly as when they ran one after the other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from failboard.drivers.base import (
    Executor,
    GroupedExecutor,
    JobOutcome,
    ResultTally,
)
from failboard.exceptions import LeaseLost, SpoolError
from failboard.models import Action, ActionKind, ActionResult
from failboard.spool import AgentSpool, Outcome

__all__ = [
    "GROUP_MAX",
    "ClaimSize",
    "Heartbeat",
    "PassOutcomes",
    "grouped",
    "job_ids",
    "split",
    "units",
]

log = logging.getLogger("failboard.agent")

GROUP_MAX = 1_000
"""Job ids in one grouped call at most, whatever the executor's ``group_size``."""

_GROUPABLE = (ActionKind.RETRY, ActionKind.DELETE)

FIRST_CLAIM = 10
"""Actions claimed by the first pass of a burst (or ``limit``, when that is smaller)."""
QUICK_PASS = 1.0
"""A full pass quicker than this (seconds) doubles the next claim, up to ``limit``."""
SLOW_PASS = 10.0
"""A pass slower than this (seconds) sends the next claim back to ``FIRST_CLAIM``."""


class ClaimSize:
    """How many actions the next pass claims: small at first, doubling while full passes are
    quick, back to small after a slow pass or an empty claim.

    A claim and a settle are most of what a one-job action costs, so a burst of them wants big
    claims (10 a pass drains ~700 actions/s with 20 agents on PostgreSQL, 100 a pass ~1,900).
    But the actions of a claim run one after the other: a big claim that meets a long
    ``retry_queue`` holds the rest of it idle while other agents of the project could run them.
    Growing only while passes stay quick, and shrinking after a slow one, gives bursts the big
    claims and keeps what one slow pass can hold up to one claim's worth, once.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.first = min(limit, FIRST_CLAIM)
        self.now = self.first

    def passed(self, claimed: int, seconds: float) -> None:
        """Adapt to a pass that claimed ``claimed`` of ``now`` and took ``seconds``."""
        if claimed == 0 or seconds > SLOW_PASS:
            # Idle: the next burst starts small again, spread over the agents that wake to it.
            self.now = self.first
        elif claimed >= self.now and seconds < QUICK_PASS:
            self.now = min(self.now * 2, self.limit)


NO_ANSWER = JobOutcome("failed", "the executor gave no answer for this job")


def grouped(executor: Executor | None) -> GroupedExecutor | None:
    """The executor's grouped face, when it has one and says so."""
    if executor is None or not executor.capabilities.grouped:
        return None
    return executor if isinstance(executor, GroupedExecutor) else None


def job_ids(action: Action) -> list[str] | None:
    """The distinct job ids a ``retry``/``delete`` action names, in order; None for any other
    action or malformed params (run alone, such an action fails the way it always did)."""
    if action.action not in _GROUPABLE:
        return None
    ids: Any = action.params.get("job_ids")
    if not isinstance(ids, list | tuple) or not ids:
        return None
    return list(dict.fromkeys(str(job_id) for job_id in ids))


def units(actions: Sequence[Action], executor: Executor | None) -> list[list[Action]]:
    """The pass, in claim order, cut into units: runs of consecutive small actions of one
    groupable kind (at most the executor's ``group_size`` distinct job ids together), every
    other action alone."""
    face = grouped(executor)
    if face is None or executor is None:
        return [[action] for action in actions]
    size = max(1, min(GROUP_MAX, face.group_size))
    out: list[list[Action]] = []
    run: list[Action] = []
    run_ids: set[str] = set()

    def flush() -> None:
        nonlocal run, run_ids
        if run:
            out.append(run)
        run, run_ids = [], set()

    for action in actions:
        ids = job_ids(action) if action.action in executor.capabilities.actions else None
        if ids is None or len(ids) > size:
            flush()
            out.append([action])
            continue
        if run and (action.action != run[0].action or len(run_ids.union(ids)) > size):
            flush()
        run.append(action)
        run_ids.update(ids)
    flush()
    return out


def split(actions: Sequence[Action], answers: Mapping[str, JobOutcome]) -> dict[int, ActionResult]:
    """Each action's result from the per-job answers of one grouped call, as if the actions had
    run one after the other: a job an earlier action of the group did counts ``missing`` for
    the later ones (it is gone by then); a job that failed fails again for each action naming
    it (it is still there, and the same reason holds)."""
    done: set[str] = set()
    results: dict[int, ActionResult] = {}
    for action in actions:
        tally = ResultTally()
        lineage: dict[str, str] = {}
        for job_id in job_ids(action) or ():
            answer = answers.get(job_id, NO_ANSWER)
            if job_id in done:
                answer = JobOutcome("missing")
            elif answer.status == "succeeded":
                done.add(job_id)
                if answer.new_id is not None:
                    lineage[job_id] = answer.new_id
            tally.count(job_id, answer)
        result = tally.result()
        if lineage:
            result = result.model_copy(update={"details": {"lineage": lineage}})
        results[action.id] = result
    return results


class PassOutcomes:
    """Outcomes of a pass waiting to be settled together, and since when the oldest waits."""

    def __init__(self) -> None:
        self._items: list[Outcome] = []
        self._since = 0.0

    def add(self, outcome: Outcome) -> None:
        if not self._items:
            self._since = time.monotonic()
        self._items.append(outcome)

    def older_than(self, seconds: float) -> bool:
        return bool(self._items) and time.monotonic() - self._since >= seconds

    def take(self) -> list[Outcome]:
        items, self._items = self._items, []
        return items


class Heartbeat:
    """Extends the leases of every claim the agent holds from a side thread, so that neither a
    long batch nor a long wait behind another action lets a lease run out."""

    def __init__(self, spool: AgentSpool, every: float) -> None:
        self.spool = spool
        self.every = max(0.2, every)
        self._held: dict[int, str] = {}
        self._lost: set[int] = set()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="failboard-heartbeat", daemon=True)

    def hold(self, action: Action) -> None:
        if action.claim_token is not None:
            with self._lock:
                self._held[action.id] = action.claim_token

    def release(self, action_id: int) -> bool:
        """Stop beating for ``action_id``; whether its lease was lost meanwhile."""
        with self._lock:
            self._held.pop(action_id, None)
            return action_id in self._lost

    def is_lost(self, action_id: int) -> bool:
        with self._lock:
            return action_id in self._lost

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self.every):
            with self._lock:
                held = list(self._held.items())
            for action_id, token in held:
                if self._done.is_set():
                    return
                try:
                    self.spool.heartbeat(action_id, token)
                except LeaseLost:
                    with self._lock:
                        self._lost.add(action_id)
                        self._held.pop(action_id, None)
                except SpoolError as exc:
                    # A short outage: the lease still has time; try again next beat.
                    log.warning("action %s: heartbeat failed: %s", action_id, exc)

"""The agent: claims its project's actions from the spool and runs them on the project's Executor.

Loop: claim up to N (the spool reaps expired leases first; N grows from 10 to ``limit`` while
passes are quick, see :class:`~failboard.agent_pass.ClaimSize`) → run each action, heartbeating
while it works and reporting progress after every batch but the last → record the outcomes of the
pass together (``settle``: one transaction, fenced by each claim token) → sleep. Consecutive
small ``retry``/``delete`` actions of a pass run as one call when the executor has the grouped
face (see :mod:`failboard.agent_pass`): one store transaction for all their jobs, each action's
result split back out of the per-job answers. On SIGTERM/SIGINT
it stops claiming, lets the action in hand finish its batches for up to ``grace_seconds``,
records what is done, hands what is left back to the spool and exits.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from failboard.agent_pass import (
    ClaimSize,
    Heartbeat,
    PassOutcomes,
    grouped,
    job_ids,
    split,
    units,
)
from failboard.drivers.base import Executor, JobOutcome
from failboard.exceptions import (
    ActionConflict,
    FailboardError,
    InvalidRequest,
    LeaseLost,
    NotFound,
    SpoolError,
    Unsupported,
)
from failboard.models import Action, ActionKind, ActionResult, to_utc
from failboard.spool import AgentSpool, Outcome

__all__ = ["Agent", "AgentStopped", "agent_name"]

log = logging.getLogger("failboard.agent")

# How often progress is written to the spool at most; every write also extends the lease.
PROGRESS_INTERVAL = 0.5
# Outcomes of a pass are recorded together (one transaction, one audit entry per kind) at the
# end of the pass, or once the oldest has waited this long (a pass of long actions still shows
# each outcome within about a second).
SETTLE_INTERVAL = 1.0
# How often the agent records itself as seen ("agent last seen" on the dashboard).
SEEN_INTERVAL = 5.0


class AgentStopped(FailboardError):
    """The agent was asked to stop and its grace time ran out before the action finished."""


def agent_name() -> str:
    """``host:pid``, the name an agent claims under (shown as ``claimed_by``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Agent:
    """Runs one project's actions, against the spool directly or through the dashboard's HTTP
    agent API (any :class:`~failboard.spool.AgentSpool`). Build the executor lazily: an agent
    that finds nothing to do never opens a connection to the project's store."""

    def __init__(
        self,
        spool: AgentSpool,
        project: str,
        executor_factory: Callable[[], Executor],
        *,
        name: str | None = None,
        limit: int = 100,
        grace_seconds: float = 30.0,
        lease_seconds: float | None = None,
    ) -> None:
        self.spool = spool
        self.project = project
        self.name = name or agent_name()
        self.limit = limit
        self.claim_size = ClaimSize(limit)
        self.grace_seconds = grace_seconds
        self._lease_seconds = lease_seconds
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self._factory = executor_factory
        self._executor: Executor | None = None
        self._stop_deadline: float | None = None
        self._last_seen: float | None = None

    @property
    def lease_seconds(self) -> float:
        # Read from the spool each time unless given: an HTTP client learns the dashboard's
        # lease only once it has reached the dashboard.
        return self._lease_seconds or self.spool.lease_seconds

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the agent to stop: no new claims; the action in hand gets ``grace_seconds``."""
        if not self.stop_event.is_set():
            self._stop_deadline = time.monotonic() + self.grace_seconds
            self.stop_event.set()
            self.wake_event.set()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def run(self, interval: float = 5.0) -> None:
        """Loop until :meth:`stop`. Spool (or dashboard) outages are logged and retried, never
        fatal."""
        while not self.stop_event.is_set():
            asked = self.claim_size.now
            started = time.monotonic()
            try:
                handled = self._pass(asked)
            except SpoolError as exc:
                log.warning("spool unavailable, retrying in %.0f s: %s", interval, exc)
                handled = 0
            self.claim_size.passed(handled, time.monotonic() - started)
            if handled >= asked:
                continue  # more may be waiting: no sleep
            self.wake_event.wait(interval)
            self.wake_event.clear()

    def run_once(self) -> int:
        """Claim up to ``limit`` actions and run them (one pass, as ``--once`` and cron do); how
        many were handled."""
        return self._pass(self.limit)

    def _pass(self, size: int) -> int:
        """Claim up to ``size`` actions and run them; how many were handled."""
        self._seen()
        claimed_at = time.monotonic()
        actions = self.spool.claim(self.project, self.name, size)
        if not actions:
            return 0
        # One heartbeat keeps every claim of the pass alive, the waiting ones too: an action
        # queued behind a long one would otherwise lose its lease unstarted, be reaped by another
        # agent and use up an attempt (with max_attempts such losses, it would end "failed"
        # though no agent ever crashed). It also keeps the finished ones alive until settled.
        heartbeat = Heartbeat(self.spool, self.lease_seconds / 3)
        for action in actions:
            heartbeat.hold(action)
        heartbeat.start()
        done = PassOutcomes()
        try:
            pass_units = units(actions, self._grouping_executor())
            for index, unit in enumerate(pass_units):
                if self.stop_event.is_set() and self._grace_over():
                    # Not started: hand it straight back instead of letting its lease run out.
                    self._settle(done, heartbeat)
                    for left in (action for rest in pass_units[index:] for action in rest):
                        heartbeat.release(left.id)
                        self._release(left, "agent stopped before starting it")
                    break
                # A claim younger than a third of the lease was just leased: no need to extend
                # it before starting (the heartbeat thread keeps it from then on).
                fresh = time.monotonic() - claimed_at < self.lease_seconds / 3
                if len(unit) == 1:
                    outcome = self._attempt(unit[0], heartbeat, fresh=fresh)
                    if outcome is not None:
                        done.add(outcome)
                else:
                    for outcome in self._attempt_group(unit, heartbeat, fresh=fresh):
                        done.add(outcome)
                if done.older_than(SETTLE_INTERVAL):
                    self._settle(done, heartbeat)
        finally:
            self._settle(done, heartbeat)
            heartbeat.stop()
        return len(actions)

    def _seen(self) -> None:
        """Record the agent as seen, at most every ``SEEN_INTERVAL`` (a write per pass would be
        a commit per ``limit`` actions for a "last seen" the dashboard shows to the second)."""
        now = time.monotonic()
        if self._last_seen is None or now - self._last_seen >= SEEN_INTERVAL:
            self.spool.record_agent(self.project, self.name)
            self._last_seen = now

    # -- one action --------------------------------------------------------------------------

    def run_action(self, action: Action, heartbeat: Heartbeat | None = None) -> None:
        """Run one claimed action and record its outcome. ``heartbeat`` is the pass's (which
        already holds the claim); without one, the action gets its own."""
        own = heartbeat is None
        if heartbeat is None:
            heartbeat = Heartbeat(self.spool, self.lease_seconds / 3)
            heartbeat.hold(action)
            heartbeat.start()
        done = PassOutcomes()
        try:
            outcome = self._attempt(action, heartbeat, fresh=False)
            if outcome is not None:
                done.add(outcome)
            self._settle(done, heartbeat)
        finally:
            if own:
                heartbeat.stop()

    def _attempt(self, action: Action, heartbeat: Heartbeat, *, fresh: bool) -> Outcome | None:
        """Run one claimed action; its outcome to record, or None when there is nothing to
        record (the claim was lost, or the action was handed back). The claim stays held by
        ``heartbeat`` until its outcome is settled."""
        token = self._start(action, heartbeat, fresh=fresh)
        if token is None:
            return None
        try:
            result = self._execute(action, self._progress(action.id, token, heartbeat))
        except LeaseLost:
            heartbeat.release(action.id)
            log.warning("action %s: lease lost; another agent owns it now", action.id)
            return None
        except AgentStopped as exc:
            heartbeat.release(action.id)
            self._release(action, str(exc))
            return None
        except (InvalidRequest, Unsupported, NotFound) as exc:
            return Outcome(action_id=action.id, claim_token=token, error=exc.message)
        except Exception as exc:
            log.exception("action %s failed", action.id)
            error = f"{type(exc).__name__}: {exc}"
            return Outcome(action_id=action.id, claim_token=token, error=error, retryable=True)
        if heartbeat.is_lost(action.id):
            heartbeat.release(action.id)
            log.warning("action %s: lease lost during the last batch", action.id)
            return None
        return Outcome(action_id=action.id, claim_token=token, result=result)

    def _start(self, action: Action, heartbeat: Heartbeat, *, fresh: bool) -> str | None:
        """Log the action and make sure its claim is still ours before touching any job; its
        claim token, or None when the lease was lost meanwhile (then it is skipped)."""
        token = action.claim_token
        if token is None:
            raise SpoolError(f"action {action.id} was not claimed (no claim token)")
        log.info(
            "action %s: %s on %s (attempt %s)",
            action.id,
            action.action,
            self.project,
            action.attempts,
        )
        try:
            # Claimed a while ago (a long action before it in the batch)? Make sure it is still
            # ours before touching any job.
            if heartbeat.is_lost(action.id):
                raise LeaseLost()
            if not fresh:
                self.spool.heartbeat(action.id, token)
        except LeaseLost:
            heartbeat.release(action.id)
            log.warning("action %s: lease lost before it started; skipping", action.id)
            return None
        return token

    def _attempt_group(
        self, group: list[Action], heartbeat: Heartbeat, *, fresh: bool
    ) -> list[Outcome]:
        """Run consecutive small actions of one kind in one grouped executor call; their
        outcomes. When the call raises (nothing was done that a rerun would repeat, by the
        face's contract), each action runs alone instead, so that one action's bad job fails
        that action only, with the error it would have had alone."""
        started = [(a, t) for a in group if (t := self._start(a, heartbeat, fresh=fresh))]
        if not started:
            return []
        face = grouped(self._executor)
        if face is None:  # not reached: units() groups only for such an executor
            return [o for a, _ in started if (o := self._attempt(a, heartbeat, fresh=True))]
        wanted = list(dict.fromkeys(j for a, _ in started for j in job_ids(a) or ()))
        try:
            if group[0].action == ActionKind.RETRY:
                answers: dict[str, JobOutcome] = face.retry_each(wanted)
            else:
                answers = face.delete_each(wanted)
        except Exception as exc:
            log.warning(
                "actions %s: grouped %s failed (%s: %s); running them one by one",
                ", ".join(str(a.id) for a, _ in started),
                group[0].action,
                type(exc).__name__,
                exc,
            )
            return [o for a, _ in started if (o := self._attempt(a, heartbeat, fresh=True))]
        results = split([a for a, _ in started], answers)
        outcomes: list[Outcome] = []
        for action, token in started:
            if heartbeat.is_lost(action.id):
                heartbeat.release(action.id)
                log.warning("action %s: lease lost during its grouped call", action.id)
                continue
            outcomes.append(
                Outcome(action_id=action.id, claim_token=token, result=results[action.id])
            )
        return outcomes

    def _grouping_executor(self) -> Executor | None:
        """The executor, built now so the pass can be cut into units; None when it cannot be
        built (each action then fails alone, as it always did)."""
        if self._executor is None:
            try:
                self._executor = self._factory()
            except Exception as exc:
                log.debug("executor not built for grouping: %s", exc)
                return None
        return self._executor

    def _execute(self, action: Action, progress: Callable[[int, int | None], None]) -> ActionResult:
        if self._executor is None:
            self._executor = self._factory()
        executor = self._executor
        if action.action not in executor.capabilities.actions:
            raise Unsupported(f"the {self.project} driver cannot {action.action}")
        params: dict[str, Any] = action.params
        match action.action:
            case ActionKind.RETRY:
                return executor.retry(list(params["job_ids"]), progress)
            case ActionKind.DELETE:
                return executor.delete(list(params["job_ids"]), progress)
            case ActionKind.RETRY_QUEUE:
                before = to_utc(datetime.fromisoformat(params["failed_before"]))
                return executor.retry_queue(params.get("queue"), before, progress)
            case ActionKind.PRUNE:
                hours = float(params["hours"])
                older_than = self.spool.now() - timedelta(hours=hours)
                return executor.prune(older_than, progress)
        raise InvalidRequest(f"unknown action {action.action!r}")

    def _progress(
        self, action_id: int, token: str, heartbeat: Heartbeat
    ) -> Callable[[int, int | None], None]:
        last = 0.0

        def report(done: int, total: int | None) -> None:
            nonlocal last
            if heartbeat.is_lost(action_id):
                raise LeaseLost()
            if self.stop_event.is_set() and self._grace_over():
                raise AgentStopped(
                    f"agent stopped after {done} of {total if total is not None else '?'} jobs; "
                    "the rest is taken up again"
                )
            if total is not None and done >= total:
                return  # the last batch: the outcome, written next, records it
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL:
                try:
                    self.spool.progress(action_id, token, done, total)
                except LeaseLost:
                    raise
                except SpoolError as exc:
                    # A spool blip must not abort the work (and use up an attempt): the
                    # batches live in the project's store, the lease still has time and the
                    # heartbeat keeps trying; progress is written again after the next batch.
                    log.warning("action %s: progress not recorded: %s", action_id, exc)
                    return
                last = now

        return report

    def _grace_over(self) -> bool:
        return self._stop_deadline is not None and time.monotonic() >= self._stop_deadline

    def _settle(self, done: PassOutcomes, heartbeat: Heartbeat) -> None:
        """Record the outcomes gathered so far in one spool call, retrying through a short
        spool outage (the work is done; losing its outcome would make the actions run again
        after their lease); then stop beating for them."""
        outcomes = done.take()
        if not outcomes:
            return
        delay = 0.5
        deadline = time.monotonic() + max(5.0, self.lease_seconds)
        try:
            while True:
                try:
                    answers = self.spool.settle(outcomes)
                    break
                except SpoolError as exc:
                    if time.monotonic() >= deadline:
                        ids = ", ".join(str(o.action_id) for o in outcomes)
                        log.error("actions %s: outcomes not written: %s", ids, exc)
                        return
                    log.warning("spool unavailable (%s); retrying the outcomes", exc)
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
            for answer in answers:
                if answer.status is None:
                    log.warning(
                        "action %s: lease lost before the outcome was written", answer.action_id
                    )
                else:
                    log.info("action %s: %s", answer.action_id, answer.status)
        finally:
            for outcome in outcomes:
                heartbeat.release(outcome.action_id)

    def _release(self, action: Action, note: str) -> None:
        """Hand the action back because this agent is stopping; it does not use an attempt.
        Retried through a short spool outage, like outcomes."""
        token = action.claim_token or ""
        delay = 0.5
        deadline = time.monotonic() + max(5.0, self.lease_seconds)
        while True:
            try:
                back = self.spool.release(action.id, token, note)
                log.info("action %s: %s", action.id, back.status)
                return
            except (LeaseLost, ActionConflict):
                log.warning("action %s: lease lost before it was handed back", action.id)
                return
            except SpoolError as exc:
                if time.monotonic() >= deadline:
                    log.error("action %s: not handed back: %s", action.id, exc)
                    return
                log.warning("action %s: spool unavailable (%s); retrying", action.id, exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

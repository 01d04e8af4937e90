"""The agent: claims its project's actions from the spool and runs them on the project's Executor.

Loop: claim up to N (the spool reaps expired leases first) → run each action, heartbeating while
it works and reporting progress after every batch → complete / fail, fenced by the claim token →
sleep. On SIGTERM/SIGINT it stops claiming, lets the action in hand finish its batches for up to
``grace_seconds``, then hands what is left back to the spool and exits.
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

from failboard.drivers.base import Executor
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
from failboard.spool import AgentSpool

__all__ = ["Agent", "AgentStopped", "agent_name"]

log = logging.getLogger("failboard.agent")

# How often progress is written to the spool at most; every write also extends the lease.
PROGRESS_INTERVAL = 0.5


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
        limit: int = 10,
        grace_seconds: float = 30.0,
        lease_seconds: float | None = None,
    ) -> None:
        self.spool = spool
        self.project = project
        self.name = name or agent_name()
        self.limit = limit
        self.grace_seconds = grace_seconds
        self._lease_seconds = lease_seconds
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self._factory = executor_factory
        self._executor: Executor | None = None
        self._stop_deadline: float | None = None

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
            try:
                handled = self.run_once()
            except SpoolError as exc:
                log.warning("spool unavailable, retrying in %.0f s: %s", interval, exc)
                handled = 0
            if handled >= self.limit:
                continue  # more may be waiting: no sleep
            self.wake_event.wait(interval)
            self.wake_event.clear()

    def run_once(self) -> int:
        """Claim up to ``limit`` actions and run them; how many were handled."""
        self.spool.record_agent(self.project, self.name)
        actions = self.spool.claim(self.project, self.name, self.limit)
        if not actions:
            return 0
        # One heartbeat keeps every claim of the pass alive, the waiting ones too: an action
        # queued behind a long one would otherwise lose its lease unstarted, be reaped by another
        # agent and use up an attempt (with max_attempts such losses, it would end "failed"
        # though no agent ever crashed).
        heartbeat = _Heartbeat(self.spool, self.lease_seconds / 3)
        for action in actions:
            heartbeat.hold(action)
        heartbeat.start()
        try:
            for index, action in enumerate(actions):
                if self.stop_event.is_set() and self._grace_over():
                    # Not started: hand it straight back instead of letting its lease run out.
                    for left in actions[index:]:
                        heartbeat.release(left.id)
                        self._release(left, "agent stopped before starting it")
                    break
                self.run_action(action, heartbeat)
        finally:
            heartbeat.stop()
        return len(actions)

    # -- one action --------------------------------------------------------------------------

    def run_action(self, action: Action, heartbeat: _Heartbeat | None = None) -> None:
        """Run one claimed action and record its outcome. ``heartbeat`` is the pass's (which
        already holds the claim); without one, the action gets its own."""
        token = action.claim_token
        if token is None:
            raise SpoolError(f"action {action.id} was not claimed (no claim token)")
        if heartbeat is None:
            own = _Heartbeat(self.spool, self.lease_seconds / 3)
            own.hold(action)
            own.start()
            try:
                self.run_action(action, own)
            finally:
                own.stop()
            return
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
            self.spool.heartbeat(action.id, token)
        except LeaseLost:
            heartbeat.release(action.id)
            log.warning("action %s: lease lost before it started; skipping", action.id)
            return
        try:
            result = self._execute(action, self._progress(action.id, token, heartbeat))
        except LeaseLost:
            log.warning("action %s: lease lost; another agent owns it now", action.id)
            return
        except AgentStopped as exc:
            self._release(action, str(exc))
            return
        except (InvalidRequest, Unsupported, NotFound) as exc:
            self._finish(action, error=exc.message, retryable=False)
            return
        except Exception as exc:
            log.exception("action %s failed", action.id)
            self._finish(action, error=f"{type(exc).__name__}: {exc}", retryable=True)
            return
        finally:
            # The outcome write below is fenced by itself; no more beats for this one.
            lost = heartbeat.release(action.id)
        if lost:
            log.warning("action %s: lease lost during the last batch", action.id)
            return
        self._finish(action, result=result)

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
        self, action_id: int, token: str, heartbeat: _Heartbeat
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
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL or (total is not None and done >= total):
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

    def _finish(
        self,
        action: Action,
        *,
        result: ActionResult | None = None,
        error: str | None = None,
        retryable: bool = False,
    ) -> None:
        """Record the outcome: completed with ``result``, else failed with ``error``."""
        if result is not None:
            self._record(action, lambda token: self.spool.complete(action.id, token, result))
        else:
            message = error or "failed"
            self._record(
                action,
                lambda token: self.spool.fail(action.id, token, message, retryable=retryable),
            )

    def _release(self, action: Action, note: str) -> None:
        """Hand the action back because this agent is stopping; it does not use an attempt."""
        self._record(action, lambda token: self.spool.release(action.id, token, note))

    def _record(self, action: Action, write: Callable[[str], Action]) -> None:
        """Write an outcome, retrying through a short spool outage (the work is done; losing
        its outcome would make the action run again after the lease)."""
        token = action.claim_token or ""
        delay = 0.5
        deadline = time.monotonic() + max(5.0, self.lease_seconds)
        while True:
            try:
                done = write(token)
                log.info("action %s: %s", action.id, done.status)
                return
            except (LeaseLost, ActionConflict):
                log.warning("action %s: lease lost before the outcome was written", action.id)
                return
            except SpoolError as exc:
                if time.monotonic() >= deadline:
                    log.error("action %s: outcome not written: %s", action.id, exc)
                    return
                log.warning("action %s: spool unavailable (%s); retrying", action.id, exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


class _Heartbeat:
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

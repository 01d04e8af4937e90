"""Many agents, random kill -9 and restart, thousands of actions: no job pushed twice, none
lost, and every action ends (completed or failed) within lease + sweep of its agent's death.

Two storms of 20 agents and 10 kills each:
- **grouped**: the issue's 10,000 actions, one job each. The agents claim them as they do by
  default (10 at first, doubling to 100 while passes are quick) and run each pass's actions as
  one grouped executor call (one store transaction): a kill lands before, inside or after such
  a call, with up to 100 claims in hand, and their re-run must count the done jobs missing.
- **batches**: 1,000 actions of 20 jobs in 4 batches each, two a pass, so that a kill often
  lands between the batches of one action: part of it committed, the rest taken back and re-run.
Since outcomes are settled per pass, a kill also lands between running actions and recording
them: those re-run after the lease and must count their jobs as missing, never push them twice.
``FAILBOARD_FAULT_AGENTS`` / ``_ACTIONS`` / ``_GROUPED_ACTIONS`` / ``_KILLS`` change the sizes.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from failboard.config import AgentSettings
from failboard.models import Action, ActionKind, ActionStatus
from failboard.spool import EventKind, Spool
from tests.faults.support import AgentProcess, agent_config, ledger, seed, spool_for, wait_until
from tests.services import fresh_database

AGENTS = int(os.environ.get("FAILBOARD_FAULT_AGENTS", "20"))
ACTIONS = int(os.environ.get("FAILBOARD_FAULT_ACTIONS", "1000"))
KILLS = int(os.environ.get("FAILBOARD_FAULT_KILLS", "10"))
# Several batches per action (one store transaction each), so that a kill often lands between
# the batches of one action: part of it committed, the rest taken back and re-run.
JOBS_PER_ACTION = 20
BATCH = 5
LEASE = 5
LIMIT = 2
# There is no separate sweeper: an expired lease is reaped by the next claim of any agent of the
# project, i.e. within one poll interval (0.2 s) of an idle agent, or one pass (LIMIT actions)
# of a busy one. SWEEP bounds that on a loaded 2-core machine.
SWEEP = 5.0
# The grouped shape: one-job actions at the default claim limit, run as one grouped executor
# call per pass (one store transaction for up to 100 actions), so kills land inside and after
# grouped calls too.
GROUPED_ACTIONS = int(os.environ.get("FAILBOARD_FAULT_GROUPED_ACTIONS", "10000"))
SHAPES = {
    "batches": (ACTIONS, JOBS_PER_ACTION, BATCH, LIMIT),
    "grouped": (GROUPED_ACTIONS, 1, 1000, AgentSettings.model_fields["limit"].default),
}


def _exit_codes(running: list[AgentProcess], timeout: float) -> list[int]:
    """Each agent's exit code after SIGTERM. One that does not exit in time is a bug: its
    stacks (SIGUSR1, faulthandler) and log tail go into the failure."""
    deadline = time.monotonic() + timeout
    while any(agent.alive() for agent in running) and time.monotonic() < deadline:
        time.sleep(0.1)
    stuck = [agent for agent in running if agent.alive()]
    for agent in stuck:
        agent.process.send_signal(signal.SIGUSR1)
    if stuck:
        time.sleep(1.0)
        tails = "\n\n".join(f"{agent.name_suffix}:\n{agent.output()[-6000:]}" for agent in stuck)
        raise AssertionError(
            f"{len(stuck)} agent(s) did not exit {timeout:g} s after SIGTERM:\n{tails}"
        )
    return [agent.process.wait() for agent in running]


def _all_actions(spool: Spool) -> list[Action]:
    found: list[Action] = []
    before: int | None = None
    while page := spool.list(limit=1000, before_id=before):
        found += page
        before = page[-1].id
    return found


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_random_kill9_storm_loses_nothing_and_doubles_nothing(tmp_path: Path, shape: str) -> None:
    actions_n, per_action, batch, limit = SHAPES[shape]
    scale = f"{AGENTS} agents, {actions_n} actions x {per_action} jobs, {KILLS} kill -9"
    rng = random.Random(8)
    with fresh_database("postgres") as url:
        ids = seed(url, actions_n * per_action)
        spool = spool_for(url, lease_seconds=LEASE, max_attempts=5)
        config = agent_config(
            tmp_path,
            spool_url=url,
            project_url=url,
            lease_seconds=LEASE,
            max_attempts=5,
            limit=limit,
            batch_size=batch,
        )
        chunks = [ids[i : i + per_action] for i in range(0, len(ids), per_action)]
        with ThreadPoolExecutor(4) as pool:  # 10,000 one by one take ~15 s on 2 cores
            actions = list(
                pool.map(lambda c: spool.submit("shop", ActionKind.RETRY, {"job_ids": c}), chunks)
            )
        wanted = {a.id: set(c) for a, c in zip(actions, chunks, strict=True)}
        a = spool.tables.actions

        def unfinished() -> int:
            with spool.engine.connect() as connection:
                return int(
                    connection.execute(
                        sa.select(sa.func.count()).where(a.c.status.in_(("pending", "processing")))
                    ).scalar_one()
                )

        def holders() -> set[str]:
            with spool.engine.connect() as connection:
                query = sa.select(a.c.claimed_by).where(a.c.status == "processing").distinct()
                return {str(name) for name in connection.execute(query).scalars()}

        def seen(agent: AgentProcess) -> bool:
            g = spool.tables.agents
            with spool.engine.connect() as connection:
                names = connection.execute(sa.select(g.c.agent)).scalars()
                return any(str(name).endswith(agent.name_suffix) for name in names)

        def hold(until: datetime) -> None:
            with spool.engine.begin() as connection:
                connection.execute(a.update().values(available_at=until.replace(tzinfo=None)))

        # The actions are held back until every agent is up, then arrive at once, as after an
        # incident: otherwise the first agents up (20 start-ups take seconds of CPU here) would
        # drain most of them before the storm begins.
        hold(datetime(2100, 1, 1, tzinfo=UTC))
        running = [AgentProcess(config, i) for i in range(AGENTS)]
        everyone = list(running)
        deaths: dict[str, datetime] = {}  # ":pid" -> when it was killed (wall clock, UTC)
        try:
            for agent in running:
                wait_until(functools.partial(seen, agent), 60, f"agent {agent.index}")
            hold(datetime.now(UTC) - timedelta(seconds=1))
            started = time.monotonic()
            kills = 0
            while kills < KILLS and unfinished() > 0:
                time.sleep(rng.uniform(0.2, 0.6))
                # A random agent among those holding a claim right now: killing one that is
                # still starting up (or idle) would prove nothing.
                busy = holders()
                candidates = [
                    i
                    for i, agent in enumerate(running)
                    if any(name.endswith(agent.name_suffix) for name in busy)
                ]
                if not candidates:
                    continue
                victim = rng.choice(candidates)
                running[victim].kill9()
                deaths[running[victim].name_suffix] = datetime.now(UTC)
                kills += 1
                # Restarted at once, coming up while the others go on (and sweep its claims).
                running[victim] = AgentProcess(config, len(everyone))
                everyone.append(running[victim])
            last_kill = time.monotonic()
            # After the last death, what it held comes back within lease + sweep; the rest is
            # draining at full speed.
            wait_until(lambda: unfinished() == 0, LEASE + 60, "every action to end", every=0.25)
            tail = time.monotonic() - last_kill
            elapsed = time.monotonic() - started
            # A restart still importing when the drain ends has no SIGTERM handler yet (it would
            # die of the signal, -15): the clean stop is asked of agents that are running.
            for agent in running:
                wait_until(functools.partial(seen, agent), 60, f"agent {agent.index} up")
            for agent in running:
                agent.terminate()
            codes = _exit_codes(running, timeout=60)
            final = _all_actions(spool)
            e = spool.tables.events
            with spool.engine.connect() as connection:
                events = connection.execute(
                    sa.select(e.c.action_id, e.c.kind, e.c.at, e.c.detail)
                ).all()
        finally:
            for agent in everyone:
                if agent.alive():
                    agent.process.kill()
            spool.close()

        book = ledger(url)
        assert codes == [0] * AGENTS
        assert len(final) == actions_n
        statuses = Counter(action.status for action in final)
        reaped = [ev for ev in events if ev.kind == EventKind.REAPED]
        outcomes = Counter(ev.action_id for ev in events if ev.kind in ("completed", "failed"))
        # How long each killed agent's actions waited before the reaper took them back.
        waits = []
        for ev in reaped:
            detail = json.loads(ev.detail)
            claimer = str(detail["claimed_by"])
            died = next((t for s, t in deaths.items() if claimer.endswith(s)), None)
            if died is not None:
                waits.append((ev.at.replace(tzinfo=UTC) - died).total_seconds())
        partial = sum(1 for x in final if x.result is not None and 0 < x.result.missing)
        print(
            f"\n{scale}: {kills} kills, {elapsed:.1f} s in all; {len(reaped)} actions taken back "
            f"({partial} of them half done: re-run, the done jobs counted missing), "
            f"taken back {min(waits, default=0):.1f}-{max(waits, default=0):.1f} s after the "
            f"kill (lease {LEASE} s); "
            f"all ended {tail:.1f} s after the last kill; statuses {dict(statuses)}"
        )
        # 0 duplicate effects: each job pushed at most once, and every job accounted for.
        assert book.duplicates() == {}
        assert book.lost(ids) == []
        # Each action ended exactly once, completed (or failed after its attempts).
        assert set(statuses) <= {ActionStatus.COMPLETED, ActionStatus.FAILED}
        assert max(outcomes.values()) == 1 and len(outcomes) == actions_n
        for action in final:
            if action.status is ActionStatus.COMPLETED:
                assert action.result is not None
                assert action.result.succeeded + action.result.missing == per_action
            else:  # its jobs were pushed once or are still there to retry: never half-done
                assert all(j in book.pushed or j in book.still_failed for j in wanted[action.id])
        assert sum(book.pushed.values()) + len(book.still_failed) == len(ids)
        assert kills == KILLS, f"the actions were drained after {kills} of {KILLS} kills"
        assert reaped, "no kill hit an agent holding an action: the storm proved nothing"
        # Every action a dead agent held was taken back within lease + sweep.
        assert max(waits) <= LEASE + SWEEP

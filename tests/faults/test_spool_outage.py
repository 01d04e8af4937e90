"""The spool database goes away while agents work (cut at a loopback proxy: the real server is
shared and stays up). Agents survive and reconnect, nothing is lost or pushed twice, and the
dashboard answers with a clear error while the spool is down and recovers after."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from failboard.agent import Agent
from failboard.config import parse_settings
from failboard.drivers.base import Progress, no_progress
from failboard.drivers.laravel import LaravelExecutor
from failboard.models import ActionKind, ActionResult, ActionStatus
from failboard.spool import Spool
from failboard.web import create_app
from tests.faults.proxy import Proxy
from tests.faults.support import (
    ProxyOn,
    agent_config,
    agents,
    ledger,
    refused_port,
    seed,
    spool_for,
    wait_until,
)
from tests.services import fresh_database

LEASE = 5


class _Steady:
    """The real executor, 30 ms slower per batch of 100: the 10,000-job retry lasts ≥ 3 s
    whatever the machine, so the 1.5 s blip that starts after its first 1,000 jobs always falls
    inside it (on a quiet box the retry alone took ~2 s and sometimes ended before the cut)."""

    def __init__(self, inner: LaravelExecutor) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def retry(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        def slower(done: int, total: int | None) -> None:
            time.sleep(0.03)
            progress(done, total)

        return self.inner.retry(job_ids, slower)


def test_a_spool_blip_shorter_than_the_lease_does_not_interrupt_a_long_action() -> None:
    jobs = 10_000
    with fresh_database("postgres") as url, Proxy.for_url(url) as proxy:
        ids = seed(url, jobs)
        spool = spool_for(url, lease_seconds=LEASE)
        action = spool.submit("shop", ActionKind.RETRY, {"job_ids": ids})
        through = Spool(proxy.url(url), lease_seconds=LEASE, timeout=2)
        executor = _Steady(LaravelExecutor("shop", url, batch_size=100))
        agent = Agent(through, "shop", lambda: executor, name="steady", limit=1)
        worker = threading.Thread(target=agent.run_once)
        try:
            worker.start()
            wait_until(lambda: spool.get(action.id).progress.done >= 1_000, 40, "progress")
            proxy.cut()
            time.sleep(1.5)  # a failover, a restarted pooler: well under the lease
            proxy.restore()
            worker.join(timeout=60)
            final = spool.get(action.id)
        finally:
            agent.stop()
            worker.join(timeout=60)
            agent.close()
            through.close()
            spool.close()
        assert proxy.refused > 0, "the blip never hit the agent"
        # The agent rode it out: same attempt, every job done by it, none twice.
        assert final.status is ActionStatus.COMPLETED, final.error
        assert final.attempts == 1
        assert final.result is not None and final.result.succeeded == jobs
        book = ledger(url)
        assert book.duplicates() == {} and sorted(book.pushed) == sorted(ids)


OUTAGE = 10.0
ACTIONS = 150
JOBS_PER_ACTION = 5


def test_agents_and_dashboard_ride_out_a_10_second_spool_outage(tmp_path: Path) -> None:
    with fresh_database("postgres") as url, Proxy.for_url(url) as proxy:
        ids = seed(url, ACTIONS * JOBS_PER_ACTION)
        spool = spool_for(url, lease_seconds=LEASE)  # the test's own view: never cut
        chunks = [ids[i : i + JOBS_PER_ACTION] for i in range(0, len(ids), JOBS_PER_ACTION)]
        actions = [spool.submit("shop", ActionKind.RETRY, {"job_ids": c}) for c in chunks]
        # Agents and dashboard reach the spool only through the proxy; the project's store
        # (the same server, another path) stays reachable, as when only the spool host fails.
        config = agent_config(
            tmp_path, spool_url=proxy.url(url), project_url=url, lease_seconds=LEASE, limit=2
        )
        settings = parse_settings(
            f'[spool]\nurl = "{proxy.url(url)}"\nlease_seconds = {LEASE}\n'
            f'[server]\nstore_timeout_seconds = 2\n[[projects]]\nkey = "shop"\n'
            f'driver = "laravel"\nurl = "{url}"\n',
            environ={},
        )

        def completed() -> int:
            return len(spool.list(status=ActionStatus.COMPLETED, limit=1000))

        with agents(config, 3) as running, TestClient(create_app(settings, inline=False)) as web:
            wait_until(lambda: completed() >= 15, 60, "the agents to get going")
            assert web.get("/api/v1/actions").status_code == 200

            proxy.cut()
            cut_at = time.monotonic()
            # The dashboard, while the spool is down: a prompt, clear 503 for what needs the
            # spool; the failed-jobs list (the projects' own stores) still answers.
            asked = time.monotonic()
            down = web.get("/api/v1/actions")
            answered_down = time.monotonic() - asked
            assert down.status_code == 503
            assert "spool" in down.json()["detail"] and "cannot connect" in down.json()["detail"]
            listing = web.get("/api/v1/jobs")
            assert listing.status_code == 200 and listing.json()["errors"] == []
            # Counted a second into the outage, not at the cut: a COMMIT the proxy had already
            # forwarded when it cut still lands (it was sent while the spool was there).
            time.sleep(max(0.0, 1.0 - (time.monotonic() - cut_at)))
            before = completed()
            time.sleep(max(0.0, OUTAGE - (time.monotonic() - cut_at)))
            done_during = completed() - before
            for agent in running:
                assert agent.alive(), f"agent {agent.index} died in the outage:\n" + "\n".join(
                    agent.output().splitlines()[-40:]
                )
            proxy.restore()
            restored = time.monotonic()

            dashboard_back = wait_until(
                lambda: web.get("/api/v1/actions").status_code == 200, 30, "the dashboard"
            )
            agents_back = wait_until(lambda: completed() > before, 30, "a completion", every=0.05)
            wait_until(
                lambda: all(spool.get(a.id).status.finished for a in actions),
                60,
                "every action to end",
                every=0.5,
            )
            drained = time.monotonic() - restored
            for agent in running:
                agent.terminate()
            codes = [agent.process.wait(timeout=20) for agent in running]
        final = [spool.get(a.id) for a in actions]
        spool.close()

        print(
            f"\nspool cut {OUTAGE:g} s: dashboard 503 in {answered_down * 1000:.0f} ms; "
            f"after restore: dashboard back in {dashboard_back:.2f} s, agents completing again "
            f"in {agents_back:.2f} s, all {ACTIONS} actions done {drained:.1f} s after; "
            f"{sum(a.attempts > 1 for a in final)} action(s) needed a second attempt"
        )
        assert done_during == 0, "something completed without a spool?"
        assert proxy.refused > 0
        assert codes == [0, 0, 0]
        assert answered_down < 5
        assert [a.status for a in final] == [ActionStatus.COMPLETED] * ACTIONS
        for action in final:
            assert action.result is not None
            assert action.result.succeeded + action.result.missing == JOBS_PER_ACTION
        book = ledger(url)
        assert book.duplicates() == {}
        assert sorted(book.pushed) == sorted(ids) and book.still_failed == set()


def test_an_agent_started_while_the_spool_is_down_waits_for_it(tmp_path: Path) -> None:
    """A host that boots its agents before the spool's database (or a spool failing over as an
    agent restarts): the looping agent waits and then works; ``--once`` exits with the reason;
    SIGTERM while waiting exits 0."""
    refused = refused_port()
    with fresh_database("postgres") as url:
        ids = seed(url, 3)
        spool = spool_for(url, lease_seconds=LEASE)
        action = spool.submit("shop", ActionKind.RETRY, {"job_ids": ids})
        down = make_url(url).set(host="127.0.0.1", port=refused.getsockname()[1])
        config = agent_config(
            tmp_path, spool_url=down.render_as_string(hide_password=False), project_url=url
        )

        once = subprocess.run(
            [sys.executable, "-m", "failboard", "agent", "-p", "shop", "--once", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert once.returncode != 0 and "cannot connect" in once.stderr, once.stderr

        with agents(config, 2) as (waiting, stopped):
            for agent in (waiting, stopped):
                wait_until(
                    lambda agent=agent: "spool unreachable at start" in agent.output(),
                    60,
                    f"agent {agent.index} to say it waits for the spool",
                )
            stopped.terminate()
            assert stopped.process.wait(timeout=20) == 0, stopped.output()
            assert waiting.alive(), waiting.output()

            host, port = make_url(url).host or "127.0.0.1", make_url(url).port or 5432
            with ProxyOn(refused, host, port):  # the spool is back where the agent looks
                wait_until(
                    lambda: spool.get(action.id).status is ActionStatus.COMPLETED,
                    60,
                    "the waiting agent to run the action",
                )
                waiting.terminate()
                assert waiting.process.wait(timeout=20) == 0, waiting.output()
        final = spool.get(action.id)
        spool.close()
        book = ledger(url)
    assert final.result is not None and final.result.succeeded == 3
    assert final.attempts == 1
    assert book.duplicates() == {} and sorted(book.pushed) == sorted(ids)

"""The spool database goes away while agents work (cut at a loopback proxy: the real server is
shared and stays up). Agents survive and reconnect, nothing is lost or pushed twice, and the
dashboard answers with a clear error while the spool is down and recovers after."""

from __future__ import annotations

import threading
import time

from failboard.agent import Agent
from failboard.drivers.laravel import LaravelExecutor
from failboard.models import ActionKind, ActionStatus
from failboard.spool import Spool
from tests.faults.proxy import Proxy
from tests.faults.support import ledger, seed, spool_for, wait_until
from tests.services import fresh_database

LEASE = 5


def test_a_spool_blip_shorter_than_the_lease_does_not_interrupt_a_long_action() -> None:
    jobs = 10_000
    with fresh_database("postgres") as url, Proxy.for_url(url) as proxy:
        ids = seed(url, jobs)
        spool = spool_for(url, lease_seconds=LEASE)
        action = spool.submit("shop", ActionKind.RETRY, {"job_ids": ids})
        through = Spool(proxy.url(url), lease_seconds=LEASE, timeout=2)
        executor = LaravelExecutor("shop", url, batch_size=100)
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

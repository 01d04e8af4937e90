"""RQ as a user drives it (issue #4's "done when"): a ``failboard.toml`` with an RQ project, the
project's own long-running ``rq worker`` (rq's command line, rq 3.x) on the real Redis under a
fresh key prefix, and nothing but the ``failboard`` command line: ``jobs list`` shows the
failures the worker left, ``retry … --wait`` asks for them again, an agent (``failboard agent``,
a process of its own) puts them back, and the worker really runs them again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.recorder_workers import wait
from tests.rq_jobs import MARKER_DIR, fresh_prefix
from tests.services import fresh_database

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Shop:
    """The project: its Redis (client, url, key prefix), config file, markers and logs."""

    client: Any
    url: str
    prefix: str
    config: Path
    markers: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "RQ_KEY_PREFIX": self.prefix[:-1],  # rq 3 reads it at import: worker and enqueuer
            "FAILBOARD_RQ_URL": self.url,
            MARKER_DIR: str(self.markers),
        }

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=timeout
        )

    def failboard(self, *args: str, timeout: float = 120) -> Any:
        done = self.run(
            sys.executable, "-m", "failboard", *args, "--config", str(self.config), timeout=timeout
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return json.loads(done.stdout) if "--json" in args else done.stdout

    def enqueue(self, queue: str, func: str, *args: str) -> str:
        """Enqueue as the project's code does (``Queue.enqueue``); the job's id."""
        done = self.run(sys.executable, "-m", "tests.rq_jobs", "enqueue", queue, func, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    @contextmanager
    def process(self, name: str, argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
        """A long-running process (output in ``<name>.log``), stopped after (:func:`_stop`)."""
        with self.log_path(name).open("wb") as output:
            process = subprocess.Popen(
                argv, stdout=output, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT
            )
        try:
            yield process
        finally:
            _stop(process)

    def log_path(self, name: str) -> Path:
        return self.markers.parent / f"{name}.log"

    def log(self, name: str) -> Callable[[], str]:
        return lambda: self.log_path(name).read_text(errors="replace")

    def failed(self, queue: str) -> set[str]:
        """The ids in rq's failed registry of ``queue``."""
        return {m.decode() for m in self.client.zrange(f"{self.prefix}failed:{queue}", 0, -1)}

    def status(self, job_id: str) -> str:
        return (self.client.hget(f"{self.prefix}job:{job_id}", "status") or b"").decode()

    def runs(self, card: str) -> int:
        path = self.markers / f"runs-{card}"
        return int(path.read_text()) if path.exists() else 0


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    with fresh_prefix() as (client, url, prefix), fresh_database("sqlite") as spool:
        markers = tmp_path / "markers"
        markers.mkdir()
        config = tmp_path / "failboard.toml"
        config.write_text(
            f'[spool]\nurl = "{spool}"\n'
            f'[[projects]]\nkey = "shop"\nname = "Shop"\ndriver = "rq"\nurl = "{url}"\n'
            f'prefix = "{prefix}"\n'
        )
        yield Shop(client, url, prefix, config, markers)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM; then, as an operator's second Ctrl+C does, a second one: rq's cold shutdown. rq
    3.0's warm shutdown on redis-py 8 may hang closing the pubsub its thread still polls (for up
    to 60 s, see tests/rq_jobs.py); a worker with no job running loses nothing by a cold one."""
    for grace in (1.5, 10.0):
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    process.wait()


def test_the_cli_lists_real_rq_failures_and_its_retry_makes_the_worker_run_them_again(
    shop: Shop,
) -> None:
    shop.failboard("migrate")
    worker = [
        sys.executable,
        "-m",
        "rq.cli",
        "worker",
        "--url",
        shop.url,
        "--path",
        str(ROOT),
        "payments",
    ]
    with shop.process("worker", worker):
        ids = {shop.enqueue("payments", "charge", card, "int:1500"): card for card in ("31", "41")}
        log = shop.log("worker")
        wait("the two failures", lambda: shop.failed("payments") == set(ids), log=log)

        listed = shop.failboard("jobs", "list", "--project", "shop", "--json")
        assert sorted(job["id"] for job in listed) == sorted(ids)
        for job in listed:
            assert (job["project"], job["queue"]) == ("shop", "payments")
            assert job["name"] == "tests.rq_jobs.charge"
            assert job["exception_class"] == "tests.rq_jobs.PaymentDeclined"
            assert job["exception_message"] == f"card {ids[job['id']]} declined for 1500 cents"
        first = next(iter(ids))
        detail = shop.failboard("jobs", "show", "shop", first, "--json")
        assert "raise PaymentDeclined" in detail["exception"]
        assert detail["args"] == [ids[first], 1500]
        assert all(shop.runs(card) == 1 for card in ids.values())

        for card in ids.values():
            (shop.markers / f"fixed-{card}").touch()
        agent = [sys.executable, "-m", "failboard", "agent", "--project", "shop"]
        agent += ["--interval", "0.2", "--config", str(shop.config)]
        with shop.process("agent", agent) as agent_process:
            # --wait follows the action until the agent, a process of its own, has done it.
            action = shop.failboard("retry", "shop", *ids, "--wait", "--json", timeout=60)
            agent_process.send_signal(signal.SIGTERM)
            assert agent_process.wait(timeout=20) == 0, shop.log("agent")()
        assert action["status"] == "completed", action
        assert action["action"] == "retry" and action["params"]["job_ids"] == list(ids)
        assert action["result"]["succeeded"] == 2 and action["result"]["failed"] == 0

        # The worker picks them up again: each charge ran a second time, and succeeded.
        wait(
            "the retried charges to run",
            lambda: all(shop.status(job_id) == "finished" for job_id in ids),
            log=log,
        )
        assert {card: shop.runs(card) for card in ids.values()} == {"31": 2, "41": 2}
        assert shop.failed("payments") == set()
        assert shop.failboard("jobs", "list", "--json") == []

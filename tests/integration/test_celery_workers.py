"""Real Celery workers (subprocesses) on the Redis broker and on the RabbitMQ broker.

A task really fails for good (after its retries) in a worker with failboard's recorder
installed; ``failboard jobs list/show`` show it with name, args, queue and traceback; an
operator retries it through the spool; the agent (a subprocess importing the project's app)
re-sends it; the worker really runs it again, and the task sees whose retry it is.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.celery_support import celery_app
from tests.rq_jobs import fresh_prefix
from tests.services import RABBITMQ_URL, fresh_database, unavailable

pytest.importorskip("celery")

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Setup:
    """One test's broker, database, queue, marker folder and the environment that names them."""

    broker: str
    prefix: str
    db_url: str
    queue: str
    markers: Path
    config: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "FB_CELERY_BROKER": self.broker,
            "FB_CELERY_PREFIX": self.prefix,
            "FB_CELERY_FAILURES": self.db_url,
            "FB_CELERY_MARKERS": str(self.markers),
        }

    def cli(self, *args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "failboard", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return json.loads(done.stdout) if "--json" in args else done.stdout

    @contextmanager
    def worker(self, pool: str = "solo") -> Iterator[subprocess.Popen[bytes]]:
        log = self.markers.parent / f"worker-{pool}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "tests.celery_tasks",
                    "worker",
                    f"--pool={pool}",
                    "--concurrency=1",
                    "-Q",
                    self.queue,
                    "--without-heartbeat",
                    "--without-gossip",
                    "--without-mingle",
                    "--loglevel=INFO",
                    "--hostname",
                    f"fbtest-{secrets.token_hex(3)}@%h",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
            )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log(self, pool: str = "solo") -> str:
        path = self.markers.parent / f"worker-{pool}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _wait(what: str, probe: Callable[[], Any], timeout: float = 60.0, log: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n{log}")


@contextmanager
def _redis_broker() -> Iterator[tuple[str, str]]:
    with fresh_prefix() as (_client, url, prefix):
        yield url, prefix


@contextmanager
def _rabbitmq_broker(queue: str) -> Iterator[tuple[str, str]]:
    from kombu import Connection

    try:
        with Connection(RABBITMQ_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        unavailable("rabbitmq", exc)
    try:
        yield RABBITMQ_URL, ""
    finally:
        # Only this test's queue (and the direct exchange Celery made for it).
        with Connection(RABBITMQ_URL, connect_timeout=3) as connection:
            channel = connection.channel()
            channel.queue_delete(queue)
            channel.exchange_delete(queue)


@pytest.fixture(params=["redis", "rabbitmq"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    kind = "postgres" if request.param == "redis" else "mysql"
    queue = f"fbtest-{request.param}-{secrets.token_hex(4)}"
    broker = _redis_broker() if request.param == "redis" else _rabbitmq_broker(queue)
    with fresh_database(kind) as db_url, broker as (broker_url, prefix):
        markers = tmp_path / "markers"
        markers.mkdir()
        config = tmp_path / "failboard.toml"
        config.write_text(
            f'[spool]\nurl = "{db_url}"\n'
            f'[[projects]]\nkey = "billing"\ndriver = "celery"\nurl = "{db_url}"\n'
            'app = "tests.celery_tasks:app"\n'
        )
        yield Setup(broker_url, prefix, db_url, queue, markers, config)


def _sender(setup: Setup) -> Any:
    return celery_app(setup.broker, setup.prefix)


def test_a_failed_task_is_listed_retried_by_the_agent_and_runs_again(setup: Setup) -> None:
    setup.cli("migrate", "--failures")  # the other test leaves the table to the recorder
    sender = _sender(setup)
    try:
        with setup.worker():
            task_id = sender.send_task(
                "tests.celery_tasks.charge", ["4242", 1500], {"note": "first"}, queue=setup.queue
            ).id
            login_id = sender.send_task(
                "tests.celery_tasks.login", ["bob", "hunter2"], queue=setup.queue
            ).id

            def listed() -> list[dict[str, Any]]:
                jobs: list[dict[str, Any]] = setup.cli("jobs", "list", "--json")
                return jobs if {job["id"] for job in jobs} >= {task_id, login_id} else []

            jobs = _wait("the final failures", listed, log=setup.log())
            assert len(jobs) == 2  # retries are not failures: one row per task
            job = next(job for job in jobs if job["id"] == task_id)
            assert job["project"] == "billing"
            assert job["name"] == "tests.celery_tasks.charge"
            assert job["queue"] == setup.queue
            assert job["exception_class"] == "tests.celery_tasks.CardDeclined"
            assert job["exception_message"] == "card 4242 declined for 1500 cents"
            assert job["attempts"] == 3  # two retries, then the final failure
            detail = setup.cli("jobs", "show", "billing", task_id, "--json")
            assert detail["args"] == ["4242", 1500]
            assert detail["payload"]["kwargs"] == {"note": "first"}
            assert "Traceback (most recent call last)" in detail["exception"]
            assert "CardDeclined: card 4242 declined" in detail["exception"]
            secret = setup.cli("jobs", "show", "billing", login_id, "--json")
            assert secret["args"] == ["bob", "[redacted]"]
            assert "hunter2" not in json.dumps(secret)

            (setup.markers / "fixed").write_text("yes")
            action = setup.cli("retry", "billing", task_id, login_id, "--json")
            setup.cli("agent", "--project", "billing", "--once")
            done = setup.cli("action", str(action["id"]), "--json")
            # The redacted task is refused (its password is gone), the other one re-sent.
            assert done["result"]["succeeded"] == 1 and done["result"]["failed"] == 1
            assert "redacted" in done["result"]["errors"][0]
            new_id = done["result"]["details"]["lineage"][task_id]
            assert new_id != task_id

            ran = _wait(
                "the re-sent task to run",
                lambda: sorted(setup.markers.glob("done-*.json")),
                log=setup.log(),
            )
            record = json.loads(ran[0].read_text())
            assert record["id"] == new_id and record["retry_of"] == task_id
            assert record["args"] == ["4242", 1500] and record["note"] == "first"
            assert [job["id"] for job in setup.cli("jobs", "list", "--json")] == [login_id]
    finally:
        sender.close()


@pytest.mark.parametrize("setup", ["redis"], indirect=True)
def test_hard_time_limit_and_lost_worker_are_recorded_by_the_main_process(setup: Setup) -> None:
    setup.cli("migrate")
    sender = _sender(setup)
    try:
        with setup.worker(pool="prefork"):
            slow = sender.send_task("tests.celery_tasks.slow", queue=setup.queue).id
            crash = sender.send_task("tests.celery_tasks.crash", queue=setup.queue).id

            def listed() -> dict[str, dict[str, Any]]:
                jobs = {job["id"]: job for job in setup.cli("jobs", "list", "--json")}
                return jobs if {slow, crash} <= set(jobs) else {}

            jobs = _wait("both failures", listed, timeout=90, log=setup.log("prefork"))
        assert jobs[slow]["exception_class"].endswith("TimeLimitExceeded")
        assert jobs[crash]["exception_class"].endswith("WorkerLostError")
        assert jobs[slow]["queue"] == setup.queue and jobs[crash]["queue"] == setup.queue
        assert jobs[slow]["name"] == "tests.celery_tasks.slow"
    finally:
        sender.close()

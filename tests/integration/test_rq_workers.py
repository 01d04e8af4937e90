"""The rq driver against real RQ workers (burst mode) on the machine's Redis.

Jobs really raise in a worker subprocess; the reader shows them; the executor (directly, and
once through the spool and an agent) puts them back; the worker runs them again and we see the
outcome. rq 3.x runs from the test environment; rq 2.x from ``.venv/rq2-site`` (installed there
on first use, see ``_rq2_site``), on Redis database 13 because rq 2.x cannot change its ``rq:``
key prefix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from failboard.agent import Agent
from failboard.config import ProjectSettings
from failboard.drivers import registry
from failboard.drivers.rq import RqExecutor, RqReader
from failboard.models import ActionKind, ActionStatus, JobQuery
from failboard.spool import Spool
from tests.rq_jobs import fresh_prefix
from tests.services import IN_CI, REDIS_URL, unavailable

ROOT = Path(__file__).resolve().parents[2]
RQ2_DB = 13
RQ2_VERSION = "2.12.0"
PIP = [sys.executable, "-m", "pip", "install", "-q"]


def _rq2_site() -> Path:
    """A folder with rq 2.x in it, installed on first use (pip --target, not on sys.path)."""
    site = Path(os.environ.get("FAILBOARD_TEST_RQ2_SITE", ROOT / ".venv" / "rq2-site"))
    if not (site / "rq").is_dir():
        done = subprocess.run(
            [*PIP, "--target", str(site), f"rq=={RQ2_VERSION}", "--no-deps"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0 or not (site / "rq").is_dir():
            message = (
                f"rq {RQ2_VERSION} could not be installed at {site} ({done.stderr.strip()[-300:]});"
                f" install it with: .venv/bin/pip install --target {site} 'rq=={RQ2_VERSION}' "
                "--no-deps (or set FAILBOARD_TEST_RQ2_SITE)"
            )
            if IN_CI:
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
    return site


@dataclass
class RqWorld:
    """One project's RQ on the real Redis, with its own key prefix and rq version."""

    client: redis.Redis
    url: str
    prefix: str
    env: dict[str, str]
    markers: Path

    def rq(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "tests.rq_jobs", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def enqueue(self, queue: str, func: str, *args: str) -> str:
        return self.rq("enqueue", queue, func, *args)

    def work(self, *queues: str) -> None:
        self.rq("work", *queues)

    def project(self, **options: Any) -> ProjectSettings:
        return ProjectSettings.model_validate(
            {"key": "shop", "driver": "rq", "url": self.url, "prefix": self.prefix, **options}
        )

    def reader(self) -> RqReader:
        reader = registry.make_reader(self.project(), 5.0)
        assert isinstance(reader, RqReader)
        return reader

    def executor(self, batch_size: int = 100) -> RqExecutor:
        executor = registry.make_executor(self.project(), batch_size)
        assert isinstance(executor, RqExecutor)
        return executor

    def status(self, job_id: str) -> str:
        return (self.client.hget(f"{self.prefix}job:{job_id}", "status") or b"").decode()


def _env(url: str, key_prefix: str, markers: Path, pythonpath: list[str]) -> dict[str, str]:
    return {
        **os.environ,
        "RQ_KEY_PREFIX": key_prefix,
        "FAILBOARD_RQ_URL": url,
        "FAILBOARD_RQ_MARKERS": str(markers),
        "PYTHONPATH": os.pathsep.join([*pythonpath, str(ROOT)]),
    }


@pytest.fixture
def rq3(tmp_path: Path) -> Iterator[RqWorld]:
    with fresh_prefix() as (client, url, prefix):
        env = _env(url, prefix[:-1], tmp_path, [])
        yield RqWorld(client, url, prefix, env, tmp_path)


@pytest.fixture
def rq2(tmp_path: Path) -> Iterator[RqWorld]:
    site = _rq2_site()
    base = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") > 2 else REDIS_URL
    url = f"{base}/{RQ2_DB}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        unavailable("redis", exc)

    def clean() -> None:  # database 13 is this test's own: only rq 2.x's keys live there
        keys = list(client.scan_iter(match="rq:*", count=1000))
        if keys:
            client.delete(*keys)

    clean()
    env = _env(url, "rq", tmp_path, [str(site)])
    try:
        world = RqWorld(client, url, "rq:", env, tmp_path)
        assert world.rq("version").startswith("2."), "rq 2.x was not the one imported"
        yield world
    finally:
        clean()
        client.close()


@pytest.fixture(params=["rq3", "rq2"])
def world(request: pytest.FixtureRequest) -> RqWorld:
    fixture: RqWorld = request.getfixturevalue(request.param)
    return fixture


def test_real_failures_are_listed_with_their_traceback(world: RqWorld) -> None:
    charge = world.enqueue("payments", "charge", "4242", "int:1999")
    divide = world.enqueue("math", "divide", "int:1", "int:0")
    before = datetime.now(UTC).replace(microsecond=0)
    world.work("payments", "math")
    reader = world.reader()
    try:
        jobs = {job.id: job for job in reader.list(JobQuery())}
        assert set(jobs) == {charge, divide}
        job = jobs[charge]
        assert job.project == "shop" and job.queue == "payments"
        assert job.name == "tests.rq_jobs.charge"
        assert job.exception_class == "tests.rq_jobs.PaymentDeclined"
        assert job.exception_message == "card 4242 declined for 1999 cents"
        assert job.failed_at is not None and job.failed_at >= before
        assert jobs[divide].exception_class == "ZeroDivisionError"
        assert sorted(reader.queues()) == ["math", "payments"]
        assert [j.id for j in reader.list(JobQuery(queue="math"))] == [divide]
        assert reader.count(JobQuery()).value == 2

        detail = reader.get(charge)
        assert detail is not None and detail.exception
        assert detail.exception.startswith("Traceback (most recent call last):")
        assert "raise PaymentDeclined" in detail.exception
        assert detail.payload["description"] == "tests.rq_jobs.charge('4242', 1999)"
        assert detail.payload["data"]["func"] == "tests.rq_jobs.charge"
        assert detail.args == ["4242", 1999]
        assert detail.extra["status"] == "failed"
    finally:
        reader.close()


def test_a_retried_job_really_runs_again(world: RqWorld) -> None:
    charge = world.enqueue("payments", "charge", "1111", "int:500")
    divide = world.enqueue("math", "divide", "int:2", "int:0")
    world.work("payments", "math")
    executor, reader = world.executor(), world.reader()
    try:
        (world.markers / "fixed-1111").touch()
        result = executor.retry([charge, divide, "no-such-job"])
        assert (result.succeeded, result.missing, result.failed) == (2, 1, 0)
        assert world.status(charge) == "queued"
        assert reader.list(JobQuery()) == []
        world.work("payments", "math")
        # The fixed card succeeded on its second run; the division failed again, with a new
        # result in its stream, and is back in the list.
        assert (world.markers / "runs-1111").read_text() == "2"
        assert world.status(charge) == "finished"
        assert world.status(divide) == "failed"
        assert world.client.xlen(f"{world.prefix}results:{divide}") == 2
        assert [job.id for job in reader.list(JobQuery())] == [divide]
        again = executor.retry([charge])
        assert (again.succeeded, again.missing) == (0, 1)
    finally:
        executor.close()
        reader.close()


def test_delete_takes_the_results_stream_too(world: RqWorld) -> None:
    job = world.enqueue("math", "divide", "int:3", "int:0")
    world.work("math")
    assert world.client.exists(f"{world.prefix}results:{job}")
    executor = world.executor()
    try:
        result = executor.delete([job, job])
        assert (result.succeeded, result.missing) == (1, 0)
        for key in (f"job:{job}", f"results:{job}"):
            assert not world.client.exists(world.prefix + key)
        assert world.client.zcard(f"{world.prefix}failed:math") == 0
        assert executor.delete([job]).missing == 1
    finally:
        executor.close()


def test_retry_queue_leaves_later_failures_alone(rq3: RqWorld) -> None:
    early = rq3.rq("enqueue-divisions", "math", "3").split()
    rq3.work("math")
    time.sleep(1.1)  # rq scores whole seconds
    cut = datetime.now(UTC)
    time.sleep(1.1)
    late = rq3.enqueue("math", "divide", "int:9", "int:0")
    rq3.work("math")
    executor = rq3.executor(batch_size=2)
    progress: list[tuple[int, int | None]] = []
    try:
        result = executor.retry_queue(None, cut, lambda d, t: progress.append((d, t)))
        assert result.succeeded == 3 and progress[-1] == (3, 3)
        pushed = rq3.client.lrange(f"{rq3.prefix}queue:math", 0, -1)
        assert sorted(pushed) == sorted(j.encode() for j in early)
        assert rq3.status(late) == "failed"
        pruned = executor.prune(cut)
        assert pruned.succeeded == 0  # the early ones were retried; the late one is newer
        assert executor.prune(datetime.now(UTC)).succeeded == 1
        assert not rq3.client.exists(f"{rq3.prefix}job:{late}")
    finally:
        executor.close()


def test_two_agents_retrying_at_once_push_each_job_once(rq3: RqWorld) -> None:
    ids = rq3.rq("enqueue-divisions", "math", "40").split()
    rq3.work("math")
    executors = [rq3.executor(batch_size=3) for _ in range(4)]
    results = []

    def run(executor: RqExecutor) -> None:
        results.append(executor.retry(ids))

    threads = [threading.Thread(target=run, args=(e,)) for e in executors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for executor in executors:
        executor.close()
    assert sum(r.succeeded for r in results) == 40
    assert sum(r.missing for r in results) == 3 * 40
    pushed = rq3.client.lrange(f"{rq3.prefix}queue:math", 0, -1)
    assert sorted(pushed) == sorted(i.encode() for i in ids)


def test_retry_through_the_spool_and_an_agent(rq3: RqWorld, tmp_path: Path) -> None:
    job = rq3.enqueue("payments", "charge", "7777", "int:100")
    rq3.work("payments")
    spool = Spool(f"sqlite:///{tmp_path}/spool.db")
    spool.migrate()
    project = rq3.project()
    try:
        action = spool.submit("shop", ActionKind.RETRY, {"job_ids": [job, "gone"]})
        (rq3.markers / "fixed-7777").touch()
        agent = Agent(spool, "shop", lambda: registry.make_executor(project), name="t")
        assert agent.run_once() == 1
        agent.close()
        final = spool.get(action.id)
        assert final.status == ActionStatus.COMPLETED
        assert final.result is not None
        assert (final.result.succeeded, final.result.missing) == (1, 1)
        rq3.work("payments")
        assert rq3.status(job) == "finished"
        assert (rq3.markers / "runs-7777").read_text() == "2"
    finally:
        spool.close()

"""The dramatiq driver against real ``dramatiq`` workers on the machine's Redis and RabbitMQ.

Actors really raise in a worker subprocess (tests/dramatiq_actors.py); the reader shows them
with the final traceback the middleware recorded; the executor (directly, and once through the
spool and an agent) puts them back; the worker runs them again and we see it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from failboard.agent import Agent
from failboard.drivers import registry
from failboard.drivers.base import Executor
from failboard.models import ActionKind, ActionStatus, FailedJob, JobQuery
from failboard.spool import Spool
from tests.dramatiq_support import ROOT, World, rabbitmq_world, redis_world, wait
from tests.services import fresh_database


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with redis_world(tmp_path) as w:
        yield w


def _listed(w: World, count: int) -> list[FailedJob]:
    reader = registry.make_reader(w.project(), 5.0)
    try:
        return wait(
            f"{count} dead letters",
            lambda: (jobs := reader.list(JobQuery())) and len(jobs) >= count and jobs,
            log=w.log(),
        )
    finally:
        reader.close()


def test_final_failure_is_listed_with_its_real_traceback_and_a_retry_runs_again(
    world: World,
) -> None:
    with world.worker():
        card = world.send("charge", "4242", 100)
        world.send("flaky", "nightly")
        jobs = {job.name: job for job in _listed(world, 2)}
        charge, flaky = jobs["charge"], jobs["flaky"]
        assert charge.uuid == card and charge.queue == "payments" and charge.project == "etl"
        assert charge.exception_class == "tests.dramatiq_actors.PaymentDeclined"
        assert charge.exception_message == "card 4242 declined for 100 cents"
        assert charge.attempts == 1
        # The middleware's record is the FINAL attempt; the message only has the one before.
        assert flaky.exception_message == "nightly broke on attempt 2" and flaky.attempts == 2
        reader = registry.make_reader(world.project())
        detail = reader.get(charge.id)
        assert detail is not None and detail.exception is not None
        assert "raise PaymentDeclined" in detail.exception
        assert detail.args == {"args": ["4242", 100], "kwargs": {}}
        assert "traceback_note" not in detail.extra
        flaky_detail = reader.get(flaky.id)
        assert flaky_detail is not None and "attempt 2" in (flaky_detail.exception or "")

        (world.markers / "fixed-4242").touch()
        executor = registry.make_executor(world.project())
        result = executor.retry([charge.id, "no-such-message"])
        assert (result.succeeded, result.missing, result.failed) == (1, 1, 0)
        wait("the retried charge to succeed", (world.markers / "ok-4242").exists, log=world.log())
        assert world.runs("4242") == 2
        assert reader.get(charge.id) is None
        assert [job.name for job in reader.list(JobQuery())] == ["flaky"]
        executor.close()
        reader.close()


def test_without_the_middleware_the_previous_attempt_is_shown_and_said_so(
    tmp_path: Path,
) -> None:
    with redis_world(tmp_path, middleware=False) as w, w.worker():
        w.send("flaky", "plain")
        (job,) = _listed(w, 1)
        assert job.exception_class == "RuntimeError"
        assert job.exception_message == "plain broke on attempt 1"
        reader = registry.make_reader(w.project())
        detail = reader.get(job.id)
        reader.close()
        assert detail is not None and "traceback_note" in detail.extra


def test_two_executors_retrying_at_once_push_each_message_once(world: World) -> None:
    with world.worker():
        for i in range(20):
            world.send("charge", f"c{i}", i)
        ids = [job.id for job in _listed(world, 20)]
    executors: list[Executor] = [registry.make_executor(world.project(), 3) for _ in range(4)]
    results = []

    def run(executor: Executor) -> None:
        results.append(executor.retry(ids))

    threads = [threading.Thread(target=run, args=(e,)) for e in executors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for executor in executors:
        executor.close()
    assert sum(r.succeeded for r in results) == 20
    assert sum(r.missing for r in results) == 3 * 20
    assert world.client.llen(f"{world.ns}:payments") == 20
    assert world.client.hlen(f"{world.ns}:payments.msgs") == 20
    assert world.client.zcard(f"{world.ns}:payments.XQ") == 0


def test_retry_through_the_spool_and_an_agent(world: World, tmp_path: Path) -> None:
    spool = Spool(f"sqlite:///{tmp_path}/spool.db")
    spool.migrate()
    project = world.project()
    try:
        with world.worker():
            world.send("charge", "7777", 5)
            (job,) = _listed(world, 1)
            action = spool.submit("etl", ActionKind.RETRY, {"job_ids": [job.id, "gone"]})
            (world.markers / "fixed-7777").touch()
            agent = Agent(spool, "etl", lambda: registry.make_executor(project), name="t")
            assert agent.run_once() == 1
            agent.close()
            final = spool.get(action.id)
            assert final.status == ActionStatus.COMPLETED and final.result is not None
            assert (final.result.succeeded, final.result.missing) == (1, 1)
            wait("the retried charge", (world.markers / "ok-7777").exists, log=world.log())
            assert world.runs("7777") == 2
    finally:
        spool.close()


def test_rabbitmq_failures_are_recorded_and_retried_through_the_broker(tmp_path: Path) -> None:
    with fresh_database("sqlite") as db, rabbitmq_world(tmp_path, db) as w, w.worker():
        message_id = w.send("charge", "5555", 42)
        w.send("flaky", "amqp")
        jobs: dict[str | None, Any] = {job.name: job for job in _listed(w, 2)}
        charge = jobs["charge"]
        assert charge.id == message_id and charge.queue == w.queue
        assert charge.exception_class == "tests.dramatiq_actors.PaymentDeclined"
        assert jobs["flaky"].exception_message == "amqp broke on attempt 2"
        assert jobs["flaky"].attempts == 2
        reader = registry.make_reader(w.project())
        detail = reader.get(message_id)
        reader.close()
        assert detail is not None and "raise PaymentDeclined" in (detail.exception or "")

        (w.markers / "fixed-5555").touch()
        executor = registry.make_executor(w.project())
        result = executor.retry([message_id, "gone"])
        executor.close()
        assert (result.succeeded, result.missing, result.failed) == (1, 1, 0)
        wait("the re-published charge", (w.markers / "ok-5555").exists, log=w.log())
        assert w.runs("5555") == 2


def _cli(w: World, config: Path, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "failboard", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=w.env(),
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout) if "--json" in args else done.stdout


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_the_cli_lists_a_real_failure_and_its_retry_makes_the_worker_run_it_again(
    broker: str, tmp_path: Path
) -> None:
    with fresh_database("sqlite") as db, ExitStack() as stack:
        w = stack.enter_context(
            redis_world(tmp_path) if broker == "redis" else rabbitmq_world(tmp_path, db)
        )
        keys = w.project().model_dump(include={"url"})
        options = w.project().options
        config = tmp_path / "failboard.toml"
        extra = (
            f'namespace = "{options.namespace}"\n'
            if broker == "redis"
            else f'broker = "rabbitmq"\nbroker_url = "{options.broker_url}"\n'
        )
        config.write_text(
            f'[spool]\nurl = "{db}"\n'
            f'[[projects]]\nkey = "etl"\ndriver = "dramatiq"\nurl = "{keys["url"]}"\n{extra}'
        )
        _cli(w, config, "migrate")
        with w.worker():
            w.send("charge", "3131", 7)

            def listed() -> list[dict[str, Any]]:
                jobs: list[dict[str, Any]] = _cli(w, config, "jobs", "list", "--json")
                return jobs

            (job,) = wait("the failure in `failboard jobs list`", listed, log=w.log())
            assert (job["project"], job["queue"], job["name"]) == ("etl", w.queue, "charge")
            assert job["exception_class"] == "tests.dramatiq_actors.PaymentDeclined"
            detail = _cli(w, config, "jobs", "show", "etl", job["id"], "--json")
            assert "raise PaymentDeclined" in detail["exception"]

            (w.markers / "fixed-3131").touch()
            action = _cli(w, config, "retry", "etl", job["id"], "--json")
            _cli(w, config, "agent", "--project", "etl", "--once")
            done = _cli(w, config, "action", str(action["id"]), "--json")
            assert done["status"] == "completed" and done["result"]["succeeded"] == 1
            wait("the retried charge", (w.markers / "ok-3131").exists, log=w.log())
            assert w.runs("3131") == 2
            assert _cli(w, config, "jobs", "list", "--json") == []

"""A real taskiq worker (subprocess) on the real Redis (taskiq-redis ListQueueBroker), with
failboard's middleware beside taskiq's SimpleRetryMiddleware.

A task really fails for good (after its retry); ``failboard jobs list/show`` show it with name,
args, queue and traceback; an operator retries it through the spool; the agent (a subprocess
importing the project's broker) kicks it again by name; the worker runs it, and the task sees
whose retry it is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.recorder_workers import Project, recorder_project, wait
from tests.rq_jobs import fresh_prefix

pytest.importorskip("taskiq_redis")

pytestmark = pytest.mark.redis


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    # The queue is one list key under a fresh prefix, deleted afterwards. taskiq keeps no other
    # key here: the broker has no result backend.
    with fresh_prefix() as (_client, url, prefix):
        with recorder_project(
            tmp_path,
            "taskiq",
            "tests.taskiq_tasks:broker",
            key="shop",
            FB_TASKIQ_QUEUE=f"{prefix}queue",
            FB_REDIS_URL=url,
        ) as project:
            yield project


def _worker() -> list[str]:
    return [
        sys.executable,
        "-m",
        "taskiq",
        "worker",
        "tests.taskiq_tasks:broker",
        "--workers=1",
        "--no-configure-logging",
        "--shutdown-timeout=2",
    ]


def _kick(project: Project, *calls: str) -> list[str]:
    """Kick the tasks as the project's code does (``await task.kiq(...)``); their ids."""
    kicks = ", ".join(f"t.{call}" for call in calls)
    code = (
        "import asyncio\nfrom tests import taskiq_tasks as t\n"
        "async def main():\n"
        "    await t.broker.startup()\n"
        f"    for task in [{kicks}]:\n"
        "        print((await task).task_id)\n"
        "    await t.broker.shutdown()\n"
        "asyncio.run(main())\n"
    )
    return project.python(code).split()


def _log(project: Project) -> Callable[[], str]:
    return lambda: project.log("worker")


def test_a_failed_task_is_listed_retried_by_the_agent_and_runs_again(project: Project) -> None:
    project.make_failures_table()
    with project.worker("worker", _worker()):
        order, login = _kick(
            project,
            "ship_order.kiq(42, 'dhl', note='first')",
            "login.kiq('bob', 'hunter2')",
        )
        wait("the final failures", lambda: project.listed(order, login), log=_log(project))
        jobs = project.jobs()
        assert len(jobs) == 2  # the first attempt was retried, not recorded
        job = jobs[order]
        assert job["name"] == "tests.taskiq_tasks:ship_order"
        assert job["queue"] == project.extra_env["FB_TASKIQ_QUEUE"]
        assert job["exception_class"] == "tests.taskiq_tasks.CarrierDown"
        assert job["exception_message"] == "order 42: dhl did not answer"
        assert job["attempts"] == 2
        detail = project.cli("jobs", "show", project.key, order, "--json")
        assert detail["args"] == [42, "dhl"]
        assert detail["payload"]["kwargs"] == {"note": "first"}
        assert "Traceback (most recent call last)" in detail["exception"]
        assert "CarrierDown: order 42: dhl did not answer" in detail["exception"]
        secret = project.detail(login)
        assert secret["attempts"] == 1  # no retry_on_error label: failed for good at once
        assert secret["args"] == ["bob", "[redacted]"]  # positional, found by its name
        assert "hunter2" not in json.dumps(secret)

        (project.markers / "fixed").write_text("yes")
        done = project.retry_through_agent(order, login)
        assert done["succeeded"] == 1 and done["failed"] == 1
        assert "redacted" in done["errors"][0]
        new_id = done["details"]["lineage"][order]
        assert new_id != order

        ran = wait("the re-sent task to run", project.ran, log=_log(project))
        assert ran == [
            {
                "task": "ship_order",
                "id": new_id,
                "args": [42, "dhl"],
                "note": "first",
                "retry_of": order,
            }
        ]
        assert project.job_ids() == {login}


def test_a_re_sent_task_that_fails_again_is_recorded_as_a_retry_of_the_first(
    project: Project,
) -> None:
    # The table is left to the recorder: made at the first failure.
    with project.worker("worker", _worker()):
        (order,) = _kick(project, "ship_order.kiq(7, 'ups')")
        wait("the failure", lambda: project.listed(order), log=_log(project))
        done = project.retry_through_agent(order)  # not fixed: it fails again, retried once
        new_id = done["details"]["lineage"][order]
        wait("the re-run's failure", lambda: project.listed(new_id), log=_log(project))
    detail = project.detail(new_id)
    assert detail["attempts"] == 2  # the re-sent task got its retry again
    assert detail["extra"]["retry_of"] == order
    assert project.job_ids() == {new_id}


def test_keep_task_id_re_sends_under_the_original_id_and_lineage_still_names_it(
    project: Project,
) -> None:
    # docs/taskiq.md, "Retry and lineage": with keep_task_id the task is kicked under its
    # original id; the action's lineage maps the id to itself, the task still sees whose retry
    # it is (the failboard_retry_of label), and a re-run that fails again is recorded under the
    # same id with retry_of set.
    project.config.write_text(project.config.read_text() + "keep_task_id = true\n")
    with project.worker("worker", _worker()):
        (order,) = _kick(project, "ship_order.kiq(9, 'fedex', note='kept')")
        wait("the failure", lambda: project.listed(order), log=_log(project))
        first = project.detail(order)
        assert first["attempts"] == 2 and first["extra"].get("retry_of") is None

        done = project.retry_through_agent(order)  # not fixed: the re-run fails again
        assert done["succeeded"] == 1, done
        assert done["details"]["lineage"] == {order: order}
        # The first failure's row went with the re-send; the one listed now is the re-run's.
        wait("the re-run's failure", lambda: project.listed(order), log=_log(project))
        again = project.detail(order)
        assert again["attempts"] == 2  # the retry middleware counted afresh, under the same id
        assert again["extra"]["retry_of"] == order
        assert project.job_ids() == {order}

        (project.markers / "fixed").write_text("yes")
        done = project.retry_through_agent(order)
        assert done["details"]["lineage"] == {order: order}
        ran = wait("the re-sent task to run", project.ran, log=_log(project))
        assert ran == [
            {
                "task": "ship_order",
                "id": order,
                "args": [9, "fedex"],
                "note": "kept",
                "retry_of": order,
            }
        ]
    assert project.job_ids() == set()

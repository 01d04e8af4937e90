"""A real Huey consumer (subprocess) on the real Redis, with failboard's recorder installed.

A task really fails for good (after its retry); ``failboard jobs list/show`` show it with name,
args, queue and traceback; an operator retries it through the spool; the agent (a subprocess
importing the project's Huey instance) re-sends it by name; the consumer runs it again.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.recorder_workers import Project, recorder_project, wait
from tests.rq_jobs import fresh_prefix

pytest.importorskip("huey")

pytestmark = pytest.mark.redis


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    # The instance's name is in every key Huey makes (huey.redis.<name>, huey.results.<name>…):
    # a fresh prefix as its name keeps the test's keys apart, and deletes them afterwards.
    with fresh_prefix() as (client, url, prefix):
        name = prefix.rstrip(":")
        with recorder_project(
            tmp_path, "huey", "tests.huey_tasks:huey", FB_HUEY_NAME=name, FB_REDIS_URL=url
        ) as project:
            yield project
        for key in client.scan_iter(match=f"huey.*{name}*", count=1000):
            client.delete(key)


def _consumer(project: Project) -> list[str]:
    return [
        sys.executable,
        "-m",
        "huey.bin.huey_consumer",
        "tests.huey_tasks.huey",
        "--workers=1",
        "--worker-type=thread",
        "--delay=0.1",
        "--max-delay=0.2",
    ]


def _enqueue(project: Project, *calls: str) -> list[str]:
    """Call the tasks as the project's code does (``task(...)`` enqueues); their ids."""
    printed = "; ".join(f"print(t.{call}.id)" for call in calls)
    return project.python(f"from tests import huey_tasks as t; {printed}").split()


def test_a_failed_task_is_listed_retried_by_the_agent_and_runs_again(project: Project) -> None:
    project.make_failures_table()
    with project.worker("consumer", _consumer(project)):
        report, login = _enqueue(
            project, "build_report(42, 'pdf', note='first')", "login('bob', 'hunter2')"
        )
        wait("the final failures", lambda: project.listed(report, login), log=_log(project))
        jobs = project.jobs()
        assert len(jobs) == 2  # the first attempt was retried, not recorded
        job = jobs[report]
        assert job["name"] == "tests.huey_tasks.build_report"
        assert job["queue"] == project.extra_env["FB_HUEY_NAME"]
        assert job["exception_class"] == "tests.huey_tasks.ReportFailed"
        assert job["exception_message"] == "report 42 has no data for pdf"
        assert job["attempts"] == 2
        detail = project.cli("jobs", "show", project.key, report, "--json")
        assert detail["args"] == [42, "pdf"]
        assert detail["payload"]["kwargs"] == {"note": "first"}
        assert "Traceback (most recent call last)" in detail["exception"]
        assert "ReportFailed: report 42 has no data" in detail["exception"]
        secret = project.detail(login)
        assert secret["args"] == ["bob", "[redacted]"]  # positional, found by its name
        assert "hunter2" not in json.dumps(secret)

        (project.markers / "fixed").write_text("yes")
        done = project.retry_through_agent(report, login)
        # The redacted task is refused (its password is gone), the other one re-sent.
        assert done["succeeded"] == 1 and done["failed"] == 1
        assert "redacted" in done["errors"][0]
        new_id = done["details"]["lineage"][report]
        assert new_id != report

        ran = wait("the re-sent task to run", project.ran, log=_log(project))
        assert ran == [{"task": "build_report", "id": new_id, "args": [42, "pdf"], "note": "first"}]
        assert project.job_ids() == {login}


def test_a_timeout_is_recorded_and_keep_task_id_re_sends_under_the_original_id(
    project: Project,
) -> None:
    # The table is left to the recorder: made at the first failure.
    project.config.write_text(project.config.read_text() + "keep_task_id = true\n")
    with project.worker("consumer", _consumer(project)):
        slow, report = _enqueue(project, "slow()", "build_report(7, 'csv')")
        wait("the failures", lambda: project.listed(slow, report), log=_log(project))
        detail = project.cli("jobs", "show", project.key, slow, "--json")
        assert detail["exception_class"] == "huey.exceptions.TaskTimeout"
        assert detail["name"] == "tests.huey_tasks.slow"
        assert "TaskTimeout: timeout" in detail["exception"]
        (project.markers / "fixed").write_text("yes")
        done = project.retry_through_agent(report)
        assert done["details"]["lineage"] == {report: report}
        ran = wait("the re-sent task to run", project.ran, log=_log(project))
        assert [record["id"] for record in ran] == [report]
    assert project.job_ids() == {slow}
    # A caller holding the original id gets the re-run's value.
    value = project.python(f"from tests import huey_tasks as t; print(t.huey.result({report!r}))")
    assert value == "report 7"


def _log(project: Project) -> Callable[[], str]:
    return lambda: project.log("consumer")

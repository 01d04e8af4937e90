"""A real arq worker (subprocess) on the real Redis, with failboard's recorder installed.

A job really fails for good (out of tries, or raising); ``failboard jobs list/show`` show it with
name, args, queue and traceback; an operator retries it through the spool; the agent (a
subprocess importing the project's WorkerSettings) enqueues it again; the worker runs it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.recorder_workers import Project, recorder_project, wait
from tests.rq_jobs import fresh_prefix

pytest.importorskip("arq")

pytestmark = [
    pytest.mark.redis,
    # arq 0.28 still passes retry_on_timeout, which redis-py 6+ deprecates (and ignores).
    pytest.mark.filterwarnings("ignore:.*retry_on_timeout:DeprecationWarning"),
]

JOB_KEYS = ("arq:job:", "arq:result:", "arq:retry:", "arq:in-progress:")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    # arq's job keys are global (arq:job:<id>...), its queue a key of its own: the queue gets a
    # fresh prefix (deleted with its health-check key afterwards), and every job id the test
    # made or re-sent has its keys deleted by id.
    with fresh_prefix() as (client, url, prefix):
        with recorder_project(
            tmp_path,
            "arq",
            "tests.arq_tasks:WorkerSettings",
            key="mailer",
            FB_ARQ_QUEUE=f"{prefix}queue",
            FB_REDIS_URL=url,
        ) as project:
            try:
                yield project
            finally:
                ids = {*project.job_ids(), *(record["id"] for record in project.ran())}
                ids |= set(project.extra_env.get("FB_TEST_IDS", "").split())
                keys = [f"{kind}{job_id}" for job_id in ids if job_id for kind in JOB_KEYS]
                if keys:
                    client.delete(*keys)


def _worker() -> list[str]:
    return [sys.executable, "-m", "arq", "tests.arq_tasks.WorkerSettings"]


def _enqueue(project: Project, *calls: tuple[Any, ...]) -> list[str]:
    """Enqueue jobs as the project's code does (``ArqRedis.enqueue_job``); their ids."""
    from arq import create_pool
    from arq.connections import RedisSettings

    async def enqueue() -> list[str]:
        pool = await create_pool(
            RedisSettings.from_dsn(project.extra_env["FB_REDIS_URL"]),
            default_queue_name=project.extra_env["FB_ARQ_QUEUE"],
        )
        try:
            ids = []
            for name, *args in calls:
                kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
                job = await pool.enqueue_job(name, *args, **kwargs)
                assert job is not None
                ids.append(job.job_id)
            return ids
        finally:
            await pool.aclose()

    ids = asyncio.run(enqueue())
    known = project.extra_env.get("FB_TEST_IDS", "")
    project.extra_env["FB_TEST_IDS"] = " ".join([known, *ids])
    return ids


def _log(project: Project) -> Callable[[], str]:
    return lambda: project.log("worker")


def test_a_failed_job_is_listed_retried_by_the_agent_and_runs_again(project: Project) -> None:
    project.make_failures_table()
    with project.worker("worker", _worker()):
        mail, login = _enqueue(
            project,
            ("send_mail", "ann@example.com", "Invoice", {"note": "first"}),
            ("login", "bob", "hunter2"),
        )
        wait("the final failures", lambda: project.listed(mail, login), log=_log(project))
        jobs = project.jobs()
        assert len(jobs) == 2  # the first try was retried, not recorded
        job = jobs[mail]
        assert job["name"] == "send_mail"
        assert job["queue"] == project.extra_env["FB_ARQ_QUEUE"]
        # Out of tries: recorded with the exception the Retry was raised from.
        assert job["exception_class"] == "tests.arq_tasks.MailBounced"
        assert job["exception_message"].startswith("mail to ann@example.com bounced: Invoice")
        assert job["attempts"] == 2
        detail = project.cli("jobs", "show", project.key, mail, "--json")
        assert detail["args"] == ["ann@example.com", "Invoice"]
        assert detail["payload"]["kwargs"] == {"note": "first"}
        assert "Traceback (most recent call last)" in detail["exception"]
        assert "MailBounced: mail to ann@example.com bounced" in detail["exception"]
        secret = project.detail(login)
        assert secret["exception_class"] == "PermissionError"
        assert secret["args"] == ["bob", "[redacted]"]  # positional, found by its name
        assert "hunter2" not in json.dumps(secret)

        (project.markers / "fixed").write_text("yes")
        done = project.retry_through_agent(mail, login)
        assert done["succeeded"] == 1 and done["failed"] == 1
        assert "redacted" in done["errors"][0]
        new_id = done["details"]["lineage"][mail]
        assert new_id != mail

        ran = wait("the re-sent job to run", project.ran, log=_log(project))
        assert ran == [
            {
                "task": "send_mail",
                "id": new_id,
                "args": ["ann@example.com", "Invoice"],
                "note": "first",
                "job_try": 1,
            }
        ]
        assert project.job_ids() == {login}


def test_a_timeout_is_recorded_and_keep_task_id_re_sends_under_the_original_id(
    project: Project,
) -> None:
    # The table is left to the recorder: made at the first failure.
    project.config.write_text(project.config.read_text() + "keep_task_id = true\n")
    with project.worker("worker", _worker()):
        slow, mail = _enqueue(project, ("slow",), ("send_mail", "cy@example.com", "Hello"))
        wait("the failures", lambda: project.listed(slow, mail), log=_log(project))
        detail = project.cli("jobs", "show", project.key, slow, "--json")
        assert detail["exception_class"] == "TimeoutError"
        assert detail["name"] == "slow"
        assert "in slow" in detail["exception"]  # where the job was when it was stopped
        # arq keeps the failed job's result (keep_result): a plain enqueue_job(_job_id=mail)
        # would be refused; the agent deletes that result first.
        (project.markers / "fixed").write_text("yes")
        done = project.retry_through_agent(mail)
        assert done["succeeded"] == 1, done
        assert done["details"]["lineage"] == {mail: mail}
        ran = wait("the re-sent job to run", project.ran, log=_log(project))
        assert [record["id"] for record in ran] == [mail]
    assert project.job_ids() == {slow}

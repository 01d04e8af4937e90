"""Tasks for a real Huey consumer in the tests, with failboard's recorder installed.

The consumer subprocess imports this module (``huey_consumer tests.huey_tasks.huey``), and so
do the agent (``app = "tests.huey_tasks:huey"``) and the test's enqueuing subprocess. What
differs between tests comes from the environment, read at import: ``FB_HUEY_NAME`` (the
instance's name, so its queue, schedule and result keys, unique per test), ``FB_REDIS_URL``,
``FB_FAILURES`` (the failures table's database) and ``FB_MARKERS`` (see tests/recorder_workers).
"""

from __future__ import annotations

import os
import time
from typing import Any

from huey import RedisHuey

import failboard.integrations.huey
from tests.recorder_workers import fixed, note_done

PROJECT = "reports"

huey = RedisHuey(
    os.environ.get("FB_HUEY_NAME", "failboard-tests"),
    url=os.environ.get("FB_REDIS_URL", "redis://127.0.0.1:6379/0"),
    read_timeout=0.2,  # a consumer that stops quickly at the end of a test
)
if os.environ.get("FB_FAILURES"):
    failboard.integrations.huey.install(huey, url=os.environ["FB_FAILURES"], project=PROJECT)


class ReportFailed(Exception):
    """The report's data source said no."""


@huey.task(retries=1, retry_delay=0, context=True)
def build_report(report_id: int, fmt: str, note: str = "", task: Any = None) -> str:
    """Fails until the "fixed" marker exists: retried once, then fails for good."""
    if not fixed():
        raise ReportFailed(f"report {report_id} has no data for {fmt}")
    note_done("build_report", task.id, args=[report_id, fmt], note=note)
    return f"report {report_id}"


@huey.task()
def login(user: str, password: str) -> None:
    """Always fails; its password must never reach the failures table."""
    raise PermissionError(f"no such user {user}")


@huey.task(timeout=0.5, context=True)
def slow(task: Any = None) -> None:
    """Stopped by Huey's task timeout (recorded through SIGNAL_TIMEOUT)."""
    for _ in range(100):
        time.sleep(0.05)
        task.check_timeout()

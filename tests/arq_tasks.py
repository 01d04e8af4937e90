"""Jobs for a real arq worker in the tests, with failboard's recorder installed.

The worker subprocess imports this module (``arq tests.arq_tasks.WorkerSettings``), and so does
the agent (``app = "tests.arq_tasks:WorkerSettings"``). What differs between tests comes from
the environment, read at import: ``FB_ARQ_QUEUE`` (the queue's key, unique per test),
``FB_REDIS_URL``, ``FB_FAILURES`` and ``FB_MARKERS`` (see tests/recorder_workers).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

from arq import Retry
from arq.connections import RedisSettings
from arq.worker import func

import failboard.integrations.arq
from tests.recorder_workers import fixed, note_done

PROJECT = "mailer"


class MailBounced(Exception):
    """The mail server said no."""


async def send_mail(ctx: dict[str, Any], to: str, subject: str, note: str = "") -> str:
    """Bounces until the "fixed" marker exists: retried once (``Retry``), then out of tries."""
    if not fixed():
        raise Retry(defer=0) from MailBounced(f"mail to {to} bounced: {subject}")
    note_done("send_mail", ctx["job_id"], args=[to, subject], note=note, job_try=ctx["job_try"])
    return f"sent to {to}"


async def login(ctx: dict[str, Any], user: str, password: str) -> None:
    """Always fails; its password must never reach the failures table."""
    raise PermissionError(f"no such user {user}")


async def slow(ctx: dict[str, Any]) -> None:
    """Stopped by its timeout: arq cancels it and fails the job with TimeoutError."""
    await asyncio.sleep(30)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [send_mail, login, func(slow, timeout=1)]
    redis_settings = RedisSettings.from_dsn(
        os.environ.get("FB_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    queue_name = os.environ.get("FB_ARQ_QUEUE", "arq:queue")
    max_tries = 2
    poll_delay = 0.1
    keep_result = 120


if os.environ.get("FB_FAILURES"):
    failboard.integrations.arq.install(
        WorkerSettings, url=os.environ["FB_FAILURES"], project=PROJECT
    )

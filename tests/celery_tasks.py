"""Tasks for real Celery workers in the tests, with failboard's recorder installed.

The worker subprocess imports this module (``celery -A tests.celery_tasks worker``), and so does
the agent (``app = "tests.celery_tasks:app"``). Everything that differs between tests comes from
the environment, read at import:

- ``FB_CELERY_BROKER``: the broker URL (Redis or RabbitMQ); ``FB_CELERY_PREFIX``: a Redis key
  prefix (kombu's ``global_keyprefix``), so that tests share no keys;
- ``FB_CELERY_FAILURES``: the database of the failures table; ``FB_CELERY_MARKERS``: a folder
  where tasks look for a "fixed" marker and write what they did;
- ``FB_CELERY_RESULTS``: a result backend (Redis, its keys under ``FB_CELERY_PREFIX`` too), for
  the canvas tests: chains, errbacks and chords report through it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from celery import Celery

import failboard.integrations.celery

PROJECT = "billing"

app = Celery("tests.celery_tasks", broker=os.environ.get("FB_CELERY_BROKER", "memory://"))
app.conf.update(
    broker_transport_options=(
        {"global_keyprefix": os.environ["FB_CELERY_PREFIX"]}
        if os.environ.get("FB_CELERY_PREFIX")
        else {}
    ),
    broker_connection_retry_on_startup=True,
    worker_enable_remote_control=False,  # no pidbox queues left behind on the broker
    worker_prefetch_multiplier=1,
    task_acks_late=False,
)
if os.environ.get("FB_CELERY_RESULTS"):
    app.conf.update(
        result_backend=os.environ["FB_CELERY_RESULTS"],
        result_backend_transport_options=(
            {"global_keyprefix": os.environ["FB_CELERY_PREFIX"]}
            if os.environ.get("FB_CELERY_PREFIX")
            else {}
        ),
    )
if os.environ.get("FB_CELERY_FAILURES"):
    failboard.integrations.celery.install(
        app, url=os.environ["FB_CELERY_FAILURES"], project=PROJECT
    )


class CardDeclined(Exception):
    """The payment provider said no."""


class NotYet(Exception):
    """The flaky step's dependency is not fixed yet."""


def _markers() -> Path:
    return Path(os.environ["FB_CELERY_MARKERS"])


def _note(task: Any, what: str, **extra: Any) -> None:
    request = task.request
    record = {
        "task": task.name,
        "id": request.id,
        "retries": request.retries,
        "retry_of": (request.headers or {}).get("failboard_retry_of"),
        **extra,
    }
    # Written aside and renamed, so a test that sees the file always reads all of it.
    path = _markers() / f"{what}-{request.id}.json"
    path.with_suffix(".tmp").write_text(json.dumps(record))
    path.with_suffix(".tmp").replace(path)


@app.task(bind=True, max_retries=2, default_retry_delay=0)
def charge(self: Any, card: str, amount: int, note: str = "") -> str:
    """Declined until the "fixed" marker exists: retried twice, then fails for good."""
    if not (_markers() / "fixed").exists():
        raise self.retry(exc=CardDeclined(f"card {card} declined for {amount} cents"))
    _note(self, "done", args=[card, amount], note=note)
    return f"charged {card}"


@app.task(bind=True)
def login(self: Any, user: str, password: str) -> None:
    """Always fails; its password must never reach the failures table."""
    raise PermissionError(f"no such user {user}")


@app.task(bind=True, time_limit=1)
def slow(self: Any) -> None:
    """Killed by the hard time limit (prefork pool only)."""
    time.sleep(30)


@app.task(bind=True)
def crash(self: Any) -> None:
    """Takes its pool process down with it (WorkerLostError, prefork pool only)."""
    os._exit(13)


# -- canvas steps: a chain double | flaky | collect, link / link_error, a chord -----------------


@app.task(bind=True)
def double(self: Any, value: int) -> int:
    """A chain's first step."""
    _note(self, "double", value=value)
    return 2 * value


@app.task(bind=True)
def flaky(self: Any, value: int) -> int:
    """Fails (no retries) until the "fixed" marker exists; then notes where in the canvas it
    ran (its group, and whether it still reports to a chord)."""
    if not (_markers() / "fixed").exists():
        raise NotYet(f"not fixed yet for {value}")
    request = self.request
    _note(self, "flaky", value=value, group=request.group, chord=request.chord is not None)
    return value + 1


@app.task(bind=True)
def collect(self: Any, value: Any, label: str = "end") -> Any:
    """A chain's last step, a ``link`` callback or a chord's callback: notes what it got."""
    _note(self, f"collect-{label}", value=value)
    return value


@app.task(bind=True)
def failed(self: Any, task_id: str) -> None:
    """A ``link_error`` errback (Celery sends it the failed task's id)."""
    _note(self, "failed", failed=task_id)


@app.task(bind=True)
def gated(self: Any, value: int) -> int:
    """Holds the (solo) worker until the "open" marker exists: a chord header task that returns
    only when the test says so."""
    deadline = time.monotonic() + 120
    while not (_markers() / "open").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    _note(self, "gated", value=value)
    return value

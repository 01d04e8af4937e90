"""The Celery project of the Celery benchmarks: one task that always fails, the recorder installed
with one line when ``FB_BENCH_CELERY_FAILURES`` names its database, Redis as the broker.

The worker (``celery -A bench.celery_app worker``) and the agent (``app =
"bench.celery_app:app"``) both import this module. ``FB_BENCH_CELERY_STAMPS``, when set, is a
file where the worker appends the time each task ended: the per-task interval with and without
the recorder is what the recorder costs a worker.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery, signals

import failboard.integrations.celery

__all__ = ["BROKER", "PROJECT", "QUEUE", "CardDeclined", "app", "charge"]

PROJECT = "celery"
QUEUE = "billing"
BROKER = os.environ.get("FB_BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/11")

app = Celery("bench.celery_app", broker=BROKER)
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_enable_remote_control=False,  # no pidbox keys in the broker's database
    worker_prefetch_multiplier=4,
    task_acks_late=False,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)
if os.environ.get("FB_BENCH_CELERY_FAILURES"):
    failboard.integrations.celery.install(
        app, url=os.environ["FB_BENCH_CELERY_FAILURES"], project=PROJECT
    )


class CardDeclined(Exception):
    """The payment provider said no."""


def _authorize(card: str, amount: int, depth: int) -> None:
    # A few frames, as a real task's traceback has.
    if depth:
        _authorize(card, amount, depth - 1)
        return
    raise CardDeclined(f"card {card} declined for {amount} cents: do_not_honor")


@app.task(name="billing.charge")
def charge(card: str, amount: int, order: dict[str, Any]) -> None:
    _authorize(card, amount, 6)


_STAMPS = os.environ.get("FB_BENCH_CELERY_STAMPS")
if _STAMPS:

    @signals.task_postrun.connect(weak=False)
    def _stamp(**_: Any) -> None:
        with open(_STAMPS, "a", encoding="ascii") as out:
            out.write(f"{time.time():.6f}\n")

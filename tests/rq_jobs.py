"""Jobs for real RQ workers in the tests, and a small command line to run them in a subprocess.

The subprocess is where rq is imported, so each test picks its own key prefix (rq 3's
``RQ_KEY_PREFIX``, read at import) and rq version (``PYTHONPATH`` may put rq 2.x first):

    python -m tests.rq_jobs enqueue QUEUE FUNC [ARG...]   -> prints the job id ("int:5" = 5)
    python -m tests.rq_jobs enqueue-divisions QUEUE N     -> N jobs that raise, their ids
    python -m tests.rq_jobs work QUEUE...                  -> one burst of a SimpleWorker
    python -m tests.rq_jobs version

``FAILBOARD_RQ_URL`` is the Redis URL. ``plant`` writes a failure the way rq 2.x/3.x lay it out,
at a chosen time, for the contract suite (a worker cannot fail a job 50 hours ago).
"""

from __future__ import annotations

import base64
import os
import pickle
import secrets
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

MARKER_DIR = "FAILBOARD_RQ_MARKERS"


@contextmanager
def fresh_prefix(url: str | None = None) -> Iterator[tuple[Any, str, str]]:
    """``(client, url, prefix)``: a key prefix no one else uses on the real Redis; every key
    under it is deleted afterwards (only those: never FLUSHDB a shared server)."""
    import redis

    from tests.services import REDIS_URL, unavailable

    url = url or REDIS_URL
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        client.close()
        unavailable("redis", exc)
    prefix = f"fbtest{secrets.token_hex(6)}:"
    try:
        yield client, url, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()


class PaymentDeclined(Exception):
    pass


def charge(card: str, amount: int) -> str:
    """Fails until a marker file says the card was fixed, then succeeds (and says so)."""
    folder = Path(os.environ[MARKER_DIR])
    runs = folder / f"runs-{card}"
    runs.write_text(str(int(runs.read_text() or "0") + 1) if runs.exists() else "1")
    if not (folder / f"fixed-{card}").exists():
        raise PaymentDeclined(f"card {card} declined for {amount} cents")
    return f"charged {card}"


def divide(a: int, b: int) -> float:
    return a / b


def ok() -> str:
    return "ok"


def plant(
    client: Any,
    prefix: str,
    queue: str,
    name: str,
    exception_class: str,
    message: str,
    failed_at: datetime,
    job_id: str,
    failure_ttl: int = 31_536_000,
) -> None:
    """One failed job as rq writes it: hash, failed registry entry, results stream entry."""
    stamp = failed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    started = (failed_at - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    trace = (
        "Traceback (most recent call last):\n"
        '  File "/app/worker.py", line 10, in perform\n    return func()\n'
        f"{exception_class}: {message}\n"
    )
    data = zlib.compress(pickle.dumps((name, None, (), {})))
    pipe = client.pipeline()
    pipe.hset(
        f"{prefix}job:{job_id}",
        mapping={
            "data": data,
            "origin": queue,
            "description": f"{name}()",
            "created_at": started,
            "enqueued_at": started,
            "started_at": started,
            "ended_at": stamp,
            "status": "failed",
            "worker_name": "test-worker",
        },
    )
    pipe.zadd(f"{prefix}failed:{queue}", {job_id: int(failed_at.timestamp()) + failure_ttl})
    pipe.sadd(f"{prefix}queues", f"{prefix}queue:{queue}")
    exc_string = base64.b64encode(zlib.compress(trace.encode()))
    pipe.xadd(f"{prefix}results:{job_id}", {"type": 2, "worker_name": "", "exc_string": exc_string})
    pipe.execute()


def _main(argv: list[str]) -> int:
    from redis import Redis
    from rq import Queue
    from rq.version import VERSION
    from rq.worker import SimpleWorker

    connection = Redis.from_url(os.environ.get("FAILBOARD_RQ_URL", "redis://127.0.0.1:6379/0"))
    command, *rest = argv
    if command == "version":
        print(VERSION)
    elif command == "enqueue":
        queue, func, *args = rest
        # "int:5" is the number 5; anything else is a string.
        parsed = [int(a[4:]) if a.startswith("int:") else a for a in args]
        job = Queue(queue, connection=connection).enqueue(f"tests.rq_jobs.{func}", *parsed)
        print(job.id)
    elif command == "enqueue-divisions":  # QUEUE N: divide(i, 0) for i < N, one id a line
        queue, count = rest
        q = Queue(queue, connection=connection)
        print("\n".join(q.enqueue("tests.rq_jobs.divide", i, 0).id for i in range(int(count))))
    elif command == "work":

        class Worker(SimpleWorker):
            # rq 3.0 with redis-py 8: closing the control-channel pubsub on exit can wait for
            # its thread's 60 s poll; a burst worker takes no commands, so it needs none.
            def subscribe(self) -> None:
                pass

            def unsubscribe(self) -> None:
                pass

        queues = [Queue(name, connection=connection) for name in rest]
        Worker(queues, connection=connection).work(burst=True)
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

"""Failed RQ jobs in a dedicated Redis database, laid out exactly as rq 3 writes them.

Each job is what a real ``rq`` worker leaves behind (the layout was read off one real failure):
the job hash (``data`` = zlib of the pickled call, ``description``, ``origin``, the times,
``status = failed``...), its entry in ``rq:failed:<queue>`` scored failure time + failure_ttl
(one year), its results stream with one failure result (``exc_string`` = base64 of zlib of a
multi-line Python traceback) and the queue in ``rq:queues``. Written with pipelines of 2,000 jobs,
so 200,000 jobs take seconds, and kept between runs: a marker hash records the generator version
and the jobs per queue, and a dataset that matches is reused.

The benches use their own Redis database numbers (never the tests' 0) and the default prefix
``rq:``, since rq-dashboard, the peer, has no prefix setting.
"""

from __future__ import annotations

import base64
import os
import pickle
import random
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import redis

__all__ = ["PREFIX", "QUEUES", "TTL", "VERSION", "ensure_rq_dataset", "rq_url", "split", "wipe"]

VERSION = 1
"""Bump when the generator changes: stored datasets of another version are rebuilt."""
PREFIX = "rq:"
TTL = 31_536_000  # rq's DEFAULT_FAILURE_TTL
QUEUES = ("default", "emails", "reports")
_WEIGHTS = (5, 3, 2)
_MARKER = "fb_bench:rq_dataset"
_PIPE = 2_000

REDIS_URL = os.environ.get("FAILBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def rq_url(db: int) -> str:
    """The bench's Redis URL for database ``db`` (the tests' server, another database)."""
    base = redis.connection.parse_url(REDIS_URL)
    host, port = base.get("host", "127.0.0.1"), base.get("port", 6379)
    auth = f":{base['password']}@" if base.get("password") else ""
    return f"redis://{auth}{host}:{port}/{db}"


_FUNCS = (
    ("billing.tasks.charge_card", "billing.gateway.CardDeclined", "card {n} declined"),
    ("mail.tasks.send_receipt", "smtplib.SMTPServerDisconnected", "Connection unexpectedly closed"),
    ("reports.tasks.build_export", "MemoryError", ""),
    ("sync.tasks.push_order", "requests.exceptions.ReadTimeout", "HTTPSConnectionPool(host="
     "'api.partner.example', port=443): Read timed out. (read timeout=30)"),
    ("search.tasks.reindex", "KeyError", "'sku_{n}'"),
)  # fmt: skip

_FRAMES = (
    '  File "/venv/lib/python3.12/site-packages/rq/worker/base.py", line 1671, in perform_job\n'
    "    return_value = job.perform()\n"
    '  File "/venv/lib/python3.12/site-packages/rq/job.py", line 1478, in perform\n'
    "    self._result = self._execute()\n"
    '  File "/venv/lib/python3.12/site-packages/rq/job.py", line 1541, in _execute\n'
    "    result = self.func(*self.args, **self.kwargs)\n"
)


def _traceback(func: str, exc: str, message: str, rng: random.Random) -> str:
    module = func.rsplit(".", 1)[0].replace(".", "/")
    app = "".join(
        f'  File "/app/{module}.py", line {rng.randint(10, 400)}, in step_{i}\n'
        f"    value = client.call(order_id={rng.randint(1, 10**7)}, attempt={i})\n"
        for i in range(rng.randint(6, 14))
    )
    return f"Traceback (most recent call last):\n{_FRAMES}{app}{exc}: {message}\n"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _jobs(
    per_queue: dict[str, int], seed: int, anchor: datetime
) -> list[tuple[str, str, datetime]]:
    """(queue, job id, failed_at) for every job, failed_at spread over the 30 days before
    ``anchor``."""
    rng = random.Random(seed)
    out = []
    for queue, count in per_queue.items():
        for _ in range(count):
            failed_at = anchor - timedelta(seconds=rng.uniform(0, 30 * 86_400))
            out.append((queue, str(uuid.UUID(int=rng.getrandbits(128), version=4)), failed_at))
    return out


def _write(client: redis.Redis, jobs: Sequence[tuple[str, str, datetime]], seed: int) -> None:
    rng = random.Random(seed + 1)
    pipe = client.pipeline(transaction=False)
    for index, (queue, job_id, failed_at) in enumerate(jobs):
        func, exc, message = _FUNCS[rng.randrange(len(_FUNCS))]
        n = rng.randint(1, 10**6)
        # A call of 1-3 KB: an order dict with line items, as a real job would carry.
        items = [
            {"sku": f"sku_{rng.randint(1, 99_999)}", "qty": rng.randint(1, 9), "note": "x" * 40}
            for _ in range(rng.randint(8, 30))
        ]
        args = (n, {"order": n, "customer": f"cus_{n:08d}", "items": items})
        data = zlib.compress(pickle.dumps((func, None, args, {"dry_run": False}), protocol=4))
        started = failed_at - timedelta(seconds=rng.uniform(0.05, 30))
        job = f"{PREFIX}job:{job_id}"
        pipe.hset(
            job,
            mapping={
                "status": "failed",
                "created_at": _stamp(started - timedelta(seconds=2)),
                "enqueued_at": _stamp(started - timedelta(seconds=1)),
                "started_at": _stamp(started),
                "ended_at": _stamp(failed_at),
                "last_heartbeat": _stamp(failed_at),
                "data": data,
                "success_callback_name": "",
                "failure_callback_name": "",
                "stopped_callback_name": "",
                "worker_name": f"worker-{rng.randint(1, 8)}",
                "group_id": "",
                "origin": queue,
                "description": f"{func}({n}, {{'order': {n}, ...}}, dry_run=False)",
                "timeout": "180",
            },
        )
        score = int(failed_at.timestamp()) + TTL
        pipe.zadd(f"{PREFIX}failed:{queue}", {job_id: score})
        trace = _traceback(func, exc, message.format(n=n), rng)
        millis = int(failed_at.timestamp() * 1000)
        pipe.xadd(
            f"{PREFIX}results:{job_id}",
            {
                "type": 2,
                "worker_name": f"worker-{rng.randint(1, 8)}",
                "exc_string": base64.b64encode(zlib.compress(trace.encode())),
                "execution_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "execution_started_at": repr(started.timestamp()),
                "execution_ended_at": repr(failed_at.timestamp()),
            },
            id=f"{millis}-0",
        )
        if index % _PIPE == _PIPE - 1:
            pipe.execute()
    for queue in {queue for queue, _, _ in jobs}:
        pipe.sadd(f"{PREFIX}queues", f"{PREFIX}queue:{queue}")
    pipe.execute()


def wipe(client: redis.Redis) -> None:
    """Delete every key of the bench's RQ data in this database (by prefix, never FLUSHDB)."""
    keys: list[bytes] = []
    for key in client.scan_iter(match=f"{PREFIX}*", count=5_000):
        keys.append(key)
        if len(keys) >= 5_000:
            client.unlink(*keys)
            keys = []
    if keys:
        client.unlink(*keys)
    client.delete(_MARKER)


def split(total: int, queues: Sequence[str] = QUEUES) -> dict[str, int]:
    """``total`` jobs over ``queues`` by the weights 5:3:2 (all in one queue when one is given)."""
    weights = _WEIGHTS[: len(queues)]
    counts = {q: total * w // sum(weights) for q, w in zip(queues, weights, strict=True)}
    counts[queues[0]] += total - sum(counts.values())
    return counts


def ensure_rq_dataset(
    url: str,
    total: int,
    *,
    queues: Sequence[str] = QUEUES,
    seed: int = 5,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """``total`` failed jobs over ``queues`` in the Redis database at ``url``, built unless a
    dataset of this version and shape is there already (``rebuild`` forces it: a retry empties
    the registries). Returns the jobs per queue."""
    per_queue = split(total, queues)
    shape = ",".join(f"{q}={n}" for q, n in per_queue.items())
    client = redis.Redis.from_url(url)
    try:
        marker = client.hgetall(_MARKER)
        counts = [client.zcard(f"{PREFIX}failed:{q}") for q in queues]
        if (
            not rebuild
            and marker.get(b"version") == str(VERSION).encode()
            and marker.get(b"shape") == shape.encode()
            and counts == list(per_queue.values())
        ):
            log(f"rq dataset {url}: {total:,} jobs ({shape}), reused")
            return per_queue
        started = time.perf_counter()
        wipe(client)
        jobs = _jobs(per_queue, seed, datetime.now(UTC))
        _write(client, jobs, seed)
        client.hset(_MARKER, mapping={"version": VERSION, "shape": shape})
        took = time.perf_counter() - started
        log(f"rq dataset {url}: {total:,} jobs ({shape}) built in {took:.1f} s")
        return per_queue
    finally:
        client.close()

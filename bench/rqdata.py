"""Realistic RQ failures in Redis, written through rq's own API and kept between runs.

Each failure is what an rq 3 worker leaves behind: the job hash (``Job.save``: a zlib-compressed
pickle of the call, whose arguments weigh 2-20 KB before compression), its entry in the queue's
failed registry (``FailedJobRegistry.add``, scored failure time + ``failure_ttl``) and the failure
in its results stream (``Result.create_failure``, a Python traceback of 14-20 frames through the
worker). ``failed_at`` is spread over 30 days, as for the Laravel rows.

The data lives in its own Redis database (``FAILBOARD_BENCH_REDIS_DB``, 14 unless set) of the
server the tests use, under a key prefix per dataset, so the test suite's keys (database 0, random
``fbtest…`` prefixes) and the bench's never meet. Redis runs without persistence on a dev box: a
dataset that is gone after a restart is simply rebuilt (about a minute per 100,000 jobs).

rq reads its key prefix (``RQ_KEY_PREFIX``) once at import, so each dataset is written by a
child process started with its prefix: ``python -m bench.rqdata PREFIX ROWS SEED``.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from redis.connection import parse_url

__all__ = ["RqDataset", "bench_redis_url", "ensure_rq_dataset"]

VERSION = 1
"""Bump when the generator changes: stored datasets of another version are rebuilt."""

REDIS_URL = os.environ.get("FAILBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BENCH_DB = int(os.environ.get("FAILBOARD_BENCH_REDIS_DB", "14"))
FAILURE_TTL = 31_536_000  # rq's DEFAULT_FAILURE_TTL: what the reader assumes by default
_PIPELINE = 500


def bench_redis_url() -> str:
    """The tests' Redis server, in the bench's own database."""
    base = REDIS_URL.split("?", 1)[0]
    scheme, _, rest = base.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{BENCH_DB}"


@dataclass(frozen=True, slots=True)
class RqDataset:
    """A stored RQ dataset: where it is and whether this run had to build it."""

    name: str
    url: str
    prefix: str  # rq's RQ_KEY_PREFIX followed by ":" (the driver's ``prefix`` option)
    rows: int
    built_seconds: float | None  # None: reused as it was


def _meta_key(prefix: str) -> str:
    return f"{prefix}:fb_bench_dataset"


def _stored(client: redis.Redis, prefix: str) -> tuple[int, int] | None:
    meta: Any = client.hgetall(_meta_key(prefix))
    if not meta:
        return None
    return int(meta[b"version"]), int(meta[b"rows"])


def _complete(client: redis.Redis, prefix: str, rows: int) -> bool:
    if _stored(client, prefix) != (VERSION, rows):
        return False
    total = 0
    for member in client.smembers(f"{prefix}:queues"):  # type: ignore[union-attr]
        queue = member.decode().removeprefix(f"{prefix}:queue:")
        total += int(client.zcard(f"{prefix}:failed:{queue}"))  # type: ignore[arg-type]
    return total == rows


def _drop(client: redis.Redis, prefix: str) -> None:
    # Only our own prefix, in our own database: never FLUSHDB a shared server.
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=2_000):
        batch.append(key)
        if len(batch) >= 1_000:
            client.delete(*batch)
            batch = []
    if batch:
        client.delete(*batch)


def ensure_rq_dataset(name: str, rows: int, *, seed: int, log: Any = print) -> RqDataset:
    """The RQ dataset under prefix ``name`` with ``rows`` failed jobs: reused when it is there
    and complete, else (re)built by a child process."""
    url = bench_redis_url()
    client = redis.Redis.from_url(url)
    try:
        if _complete(client, name, rows):
            return RqDataset(name, url, f"{name}:", rows, None)
        log(f"building {name} on Redis db {BENCH_DB}: {rows:,} RQ jobs (kept for later runs)")
        started = time.perf_counter()
        _drop(client, name)
        env = {**os.environ, "RQ_KEY_PREFIX": name}
        subprocess.run(
            [sys.executable, "-m", "bench.rqdata", name, str(rows), str(seed)], env=env, check=True
        )
        client.hset(_meta_key(name), mapping={"version": VERSION, "rows": rows})
        return RqDataset(name, url, f"{name}:", rows, time.perf_counter() - started)
    finally:
        client.close()


# -- the generator (runs in the child, where rq is imported with the dataset's prefix) ---------


@dataclass(frozen=True, slots=True)
class _Failure:
    exception: str
    message: str
    frames: tuple[str, ...]  # the application's frames, innermost last


@dataclass(frozen=True, slots=True)
class _Job:
    func: str
    queue: str
    weight: int
    failures: tuple[_Failure, ...]


_SITE = "/app/.venv/lib/python3.12/site-packages"
_CARD = _Failure(
    "stripe._error.CardError",
    "Request req_{token}: Your card was declined.",
    (
        '  File "/app/shop/billing/charge.py", line 57, in charge_subscription\n'
        "    intent = stripe.PaymentIntent.create(amount=amount, customer=customer_id)",
        f'  File "{_SITE}/stripe/_payment_intent.py", line 7011, in create\n'
        '    cls._static_request("post", cls.class_url(), params=params)',
        f'  File "{_SITE}/stripe/_api_requestor.py", line 197, in request\n'
        "    resp = requestor._interpret_response(rbody, rcode, rheaders, api_mode)",
        f'  File "{_SITE}/stripe/_api_requestor.py", line 844, in _interpret_response\n'
        "    self.handle_error_response(rbody, rcode, resp.data, rheaders, api_mode)",
    ),
)
_TIMEOUT = _Failure(
    "httpx.ReadTimeout",
    "timed out after {ms} ms reading https://api.partner.example/v2/orders/{id}",
    (
        '  File "/app/shop/partners/client.py", line 88, in push_order\n'
        '    response = self.http.post(f"orders/{order_id}", json=body)',
        f'  File "{_SITE}/httpx/_client.py", line 1144, in post\n    return self.request(',
        f'  File "{_SITE}/httpx/_transports/default.py", line 249, in handle_request\n'
        "    with map_httpcore_exceptions():",
        '  File "/usr/local/lib/python3.12/contextlib.py", line 158, in __exit__\n'
        "    self.gen.throw(typ, value, traceback)",
    ),
)
_DEADLOCK = _Failure(
    "psycopg.errors.DeadlockDetected",
    "deadlock detected\nDETAIL:  Process {pid} waits for ShareLock on transaction {xid}; blocked "
    "by process {pid2}.\nHINT:  See server log for query details.",
    (
        '  File "/app/shop/orders/models.py", line 142, in mark_paid\n'
        "    self.save(update_fields=['status', 'updated_at'])",
        f'  File "{_SITE}/django/db/models/base.py", line 892, in save\n    self.save_base(',
        f'  File "{_SITE}/django/db/backends/utils.py", line 105, in _execute\n'
        "    return self.cursor.execute(sql, params)",
        f'  File "{_SITE}/psycopg/cursor.py", line 97, in execute\n'
        "    raise ex.with_traceback(None)",
    ),
)
_SMTP = _Failure(
    "smtplib.SMTPServerDisconnected",
    "Connection unexpectedly closed: timed out after {ms} ms",
    (
        '  File "/app/shop/mail/send.py", line 31, in send_invoice\n'
        "    connection.send_messages([message])",
        f'  File "{_SITE}/django/core/mail/backends/smtp.py", line 128, in send_messages\n'
        "    new_conn_created = self.open()",
        '  File "/usr/local/lib/python3.12/smtplib.py", line 405, in getreply\n'
        '    raise SMTPServerDisconnected("Connection unexpectedly closed: " + str(e))',
    ),
)
_MISSING = _Failure(
    "shop.orders.models.Order.DoesNotExist",
    "Order matching query does not exist. (id={id})",
    (
        '  File "/app/shop/orders/tasks.py", line 64, in export_order\n'
        "    order = Order.objects.get(pk=order_id)",
        f'  File "{_SITE}/django/db/models/query.py", line 649, in get\n'
        "    raise self.model.DoesNotExist(",
    ),
)
_KEY = _Failure(
    "KeyError",
    "'{key}'",
    (
        '  File "/app/shop/webhooks/handlers.py", line 41, in deliver_webhook\n'
        "    event_type = payload['{key}']",
    ),
)
_DISK = _Failure(
    "OSError",
    "[Errno 28] No space left on device: '/exports/orders-{id}.csv'",
    ('  File "/app/shop/exports/csv.py", line 77, in export_orders\n    writer.writerows(rows)',),
)
_JOBS = (
    _Job("shop.mail.tasks.send_invoice", "emails", 14, (_SMTP, _MISSING)),
    _Job("shop.mail.tasks.send_welcome_email", "emails", 8, (_SMTP,)),
    _Job("shop.billing.tasks.charge_subscription", "billing", 9, (_CARD, _DEADLOCK, _TIMEOUT)),
    _Job("shop.billing.tasks.sync_stripe_customer", "billing", 3, (_CARD, _TIMEOUT)),
    _Job("shop.webhooks.tasks.deliver_webhook", "webhooks", 18, (_TIMEOUT, _KEY)),
    _Job("shop.exports.tasks.export_orders", "exports", 5, (_DISK, _MISSING)),
    _Job("shop.catalog.tasks.import_products", "default", 12, (_DEADLOCK, _TIMEOUT)),
    _Job("shop.media.tasks.transcode_podcast", "default", 10, (_DISK,)),
    _Job("shop.search.tasks.reindex", "low", 8, (_TIMEOUT, _DEADLOCK)),
)
_WEIGHTS = [job.weight for job in _JOBS]
_WORKER = (
    f'  File "{_SITE}/rq/worker/base.py", line 1474, in perform_job\n'
    "    return_value = job.perform()",
    f'  File "{_SITE}/rq/job.py", line 1402, in perform\n    self._result = self._execute()',
    f'  File "{_SITE}/rq/job.py", line 1443, in _execute\n'
    "    result = self.func(*self.args, **self.kwargs)",
    f'  File "{_SITE}/sentry_sdk/integrations/rq.py", line 66, in sentry_patched_perform_job\n'
    "    rv = old_perform_job(self, job, *args, **kwargs)",
    '  File "/app/shop/tasks/base.py", line 22, in wrapper\n    return func(*args, **kwargs)',
    '  File "/app/shop/tasks/base.py", line 48, in with_tenant\n    return func(*args, **kwargs)',
    f'  File "{_SITE}/django/db/transaction.py", line 256, in inner\n'
    "    return func(*args, **kwds)",
    f'  File "{_SITE}/opentelemetry/instrumentation/utils.py", line 112, in wrapper\n'
    "    return wrapped(*args, **kwargs)",
    f'  File "{_SITE}/tenacity/__init__.py", line 477, in __call__\n'
    "    result = fn(*args, **kwargs)",
    '  File "/app/shop/tasks/retrying.py", line 19, in call\n    return self.fn(*a, **kw)',
)
_WORDS = "standard express pickup gift discount coupon refund backorder north south bulk".split()


def _traceback(rng: random.Random, failure: _Failure) -> str:
    values = {
        "token": f"{rng.getrandbits(64):016x}",
        "ms": rng.randint(5_000, 60_000),
        "id": rng.randint(1_000, 9_999_999),
        "pid": rng.randint(100, 9_999),
        "pid2": rng.randint(100, 9_999),
        "xid": rng.randint(10**6, 10**8),
        "key": rng.choice(("customer_id", "event", "data.object", "signature")),
    }
    lines = ["Traceback (most recent call last):", *_WORKER]
    lines += [frame.replace("{key}", values["key"]) for frame in failure.frames]
    lines.append(f"{failure.exception}: {failure.message.format(**values)}")
    return "\n".join(lines) + "\n"


def _kwargs(rng: random.Random) -> dict[str, Any]:
    # Pickled, the call weighs 2-20 KB (log-uniform) before rq compresses it.
    count = round(math.exp(rng.uniform(math.log(24), math.log(255))))
    return {
        "customer_email": f"customer{rng.randint(1, 500_000)}@example.com",
        "locale": rng.choice(("en", "de", "fr", "nl", "es")),
        "line_items": [
            {
                "sku": f"SKU-{rng.randint(10_000, 99_999)}",
                "qty": rng.randint(1, 9),
                "name": f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS)} #{rng.randint(1, 999)}",
                "note": f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}",
                "price": f"{rng.randint(1, 99_999) / 100:.2f}",
            }
            for _ in range(count)
        ],
    }


def _build(prefix: str, rows: int, seed: int) -> None:
    from rq import Queue
    from rq.job import Job, JobStatus
    from rq.registry import FailedJobRegistry
    from rq.results import Result

    connection = redis.Redis.from_url(bench_redis_url())
    parse_url(bench_redis_url())  # fail early on a bad URL, before any write
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    registries = {
        queue: FailedJobRegistry(queue, connection=connection)
        for queue in {job.queue for job in _JOBS}
    }
    pipe = connection.pipeline(transaction=False)
    for queue in registries:
        pipe.sadd(Queue.redis_queues_keys, Queue(queue, connection=connection).key)
    for index in range(rows):
        spec = rng.choices(_JOBS, _WEIGHTS)[0]
        age = rng.randrange(30 * 86_400)
        failed_at = now - timedelta(seconds=age)
        job = Job.create(
            spec.func,
            args=(rng.randint(1_000, 9_999_999),),
            kwargs=_kwargs(rng),
            connection=connection,
            origin=spec.queue,
            id=f"{rng.getrandbits(128):032x}",
            failure_ttl=FAILURE_TTL,
        )
        job.created_at = job.enqueued_at = failed_at - timedelta(seconds=rng.randint(1, 600))
        job.started_at = failed_at - timedelta(milliseconds=rng.randint(5, 30_000))
        job.ended_at = failed_at
        job.set_status(JobStatus.FAILED, pipeline=pipe)
        trace = _traceback(rng, rng.choice(spec.failures))
        # ttl = what is left of failure_ttl: the registry scores it failed_at + failure_ttl,
        # exactly what a worker would have written at failed_at.
        ttl = FAILURE_TTL - age
        registries[spec.queue].add(job, ttl=ttl, exc_string=trace, pipeline=pipe)
        Result.create_failure(job, ttl, trace, worker_name="worker-1", pipeline=pipe)
        if index % _PIPELINE == _PIPELINE - 1:
            pipe.execute()
    pipe.execute()
    connection.close()


if __name__ == "__main__":
    _build(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))

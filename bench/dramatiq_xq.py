"""Issue #4's Dramatiq targets: 100,000 dead-lettered messages on the Redis broker — the first
page under 100 ms, and a retry of all of them through the spool and a real agent under 60 s.

The dead letters are what dramatiq itself leaves (``<ns>:<queue>.XQ`` sorted set scored by the
dead-letter time in ms, ``<ns>:<queue>.XQ.msgs`` hash of encoded messages, with the options the
Retries middleware sets) plus the error record failboard's middleware writes beside each one.
They live in their own Redis database (``FAILBOARD_BENCH_DRAMATIQ_DB``, default 12) and are
rebuilt for every run, since a retry moves them all.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import redis
from dramatiq import Message

from bench.procs import Measured, run_measured
from bench.results import Result, log, ms, percentile
from bench.services import DATA_DIR, recreate_database
from failboard.config import parse_settings
from failboard.drivers import registry
from failboard.drivers.dramatiq import keys
from failboard.models import ActionKind, ActionStatus, JobQuery
from failboard.spool import Spool

__all__ = ["run"]

NAMESPACE = "fbbench"
QUEUES = ("default", "emails", "reports")
PROJECT = "etl"
PAGE_TARGET = 0.100
RETRY_TARGET = 60.0
ACTORS = ("send_invoice", "render_report", "sync_crm", "resize_image", "charge_card")


def _redis_url() -> str:
    base = os.environ.get("FAILBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    db = os.environ.get("FAILBOARD_BENCH_DRAMATIQ_DB", "12")
    return base.rsplit("/", 1)[0] + f"/{db}"


def _traceback(rng: random.Random, actor: str) -> str:
    frames = "".join(
        f'  File "/srv/app/{rng.choice(("tasks", "crm", "billing", "util"))}.py", line '
        f"{rng.randint(10, 900)}, in {rng.choice((*ACTORS, '_call', 'request', 'send'))}\n"
        f"    result = client.{rng.choice(('post', 'get', 'put'))}(url, json=body)\n"
        for _ in range(rng.randint(8, 20))
    )
    return (
        f"Traceback (most recent call last):\n{frames}"
        f"ConnectionError: {actor}: upstream refused after {rng.randint(1, 30)} s"
    )


def build(client: redis.Redis, rows: int, seed: int = 11) -> None:
    """``rows`` dead letters over QUEUES, dead-lettered over the last 7 days."""
    rng = random.Random(seed)
    client.flushdb()
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for index in range(rows):
        queue = QUEUES[index % len(QUEUES)]
        actor = rng.choice(ACTORS)
        rid = f"{index:08d}-{rng.getrandbits(64):016x}"
        tb = _traceback(rng, actor)
        body = {"customer_id": rng.randint(1, 10**6), "lines": ["x" * 40] * rng.randint(5, 60)}
        message = Message(
            queue_name=queue,
            actor_name=actor,
            args=(rng.randint(1, 10**9),),
            kwargs={"body": body},
            options={"redis_message_id": rid, "retries": 3, "traceback": tb},
        )
        dead_ms = now_ms - rng.randint(0, 7 * 86_400_000)
        pipe.zadd(keys.xq_key(NAMESPACE, queue), {rid: dead_ms})
        pipe.hset(keys.xq_messages_key(NAMESPACE, queue), rid, message.encode())
        record = {
            "exception_class": "ConnectionError",
            "exception_message": tb.rsplit(": ", 1)[-1],
            "traceback": tb,
            "attempts": 4,
            "message_id": message.message_id,
            "actor_name": actor,
            "failed_at": datetime.fromtimestamp(dead_ms / 1000, UTC).isoformat(),
            "worker": "bench:1",
        }
        pipe.set(keys.error_key(NAMESPACE, rid), json.dumps(record))
        if index % 2_000 == 1_999:
            pipe.execute()
    pipe.sadd(keys.queues_key(NAMESPACE), *QUEUES)
    pipe.execute()


def _config(url: str, spool_url: str) -> str:
    return (
        f'[spool]\nurl = "{spool_url}"\n\n[[projects]]\nkey = "{PROJECT}"\n'
        f'driver = "dramatiq"\nurl = "{url}"\nnamespace = "{NAMESPACE}"\n'
    )


def _first_page(config_text: str, samples: int) -> list[float]:
    settings = parse_settings(config_text)
    reader = registry.make_reader(settings.project(PROJECT), 10.0)
    timings = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            page = reader.list(JobQuery(limit=50))
            timings.append(time.perf_counter() - started)
            assert len(page) == 50 and page[0].exception_class == "ConnectionError"
    finally:
        reader.close()
    return timings


def run(quick: bool = False) -> list[Result]:
    rows = 10_000 if quick else 100_000
    url = _redis_url()
    client = redis.Redis.from_url(url)
    log(f"dramatiq: building {rows:,} dead letters in {url}")
    started = time.perf_counter()
    build(client, rows)
    log(f"  built in {time.perf_counter() - started:.1f} s")
    spool_url = recreate_database("postgres", "fb_bench_spool_dramatiq")
    config_text = _config(url, spool_url)
    timings = _first_page(config_text, 10 if quick else 40)
    median, p95 = statistics.median(timings), percentile(timings, 0.95)
    bench = f"dramatiq {rows:,} dead letters (Redis)"
    page = Result(
        bench,
        "first page: 50 newest with exception class",
        f"{ms(median)} (p95 {ms(p95)})",
        "< 100 ms",
        median < PAGE_TARGET,
        f"DramatiqReader.list over {len(QUEUES)} queues, {len(timings)} samples",
        {"samples_s": timings},
    )

    with Spool(spool_url) as spool:
        spool.migrate()
        action = spool.submit(
            PROJECT,
            ActionKind.RETRY_QUEUE,
            {"queue": None, "failed_before": datetime.now(UTC) + timedelta(seconds=1)},
        )
    config = DATA_DIR / "dramatiq.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(config_text, encoding="utf-8")
    log(f"dramatiq: failboard agent --once retrying all {rows:,}")
    agent: Measured = run_measured(
        [
            sys.executable,
            "-m",
            "failboard",
            "agent",
            "--project",
            PROJECT,
            "--once",
            "--config",
            str(config),
        ],
        "agent-dramatiq.log",
    )
    with Spool(spool_url) as spool:
        done = spool.get(action.id)
    left = sum(int(client.zcard(keys.xq_key(NAMESPACE, q))) for q in QUEUES)
    queued = sum(int(client.llen(keys.queue_key(NAMESPACE, q))) for q in QUEUES)
    stored = sum(int(client.hlen(keys.queue_messages_key(NAMESPACE, q))) for q in QUEUES)
    succeeded = done.result.succeeded if done.result else 0
    correct = (
        agent.exit_code == 0
        and done.status is ActionStatus.COMPLETED
        and succeeded == rows == queued == stored
        and left == 0
    )
    check = (
        f"{queued:,} on the queues ({stored:,} messages), {left} dead letters left, "
        f"{done.status.value} with succeeded={succeeded:,}"
    )
    log(f"  {agent.wall_seconds:.1f} s, peak RSS {agent.peak_rss_bytes / 2**20:,.0f} MB; {check}")
    client.flushdb()
    client.close()
    retry = Result(
        bench,
        "retry all through the spool and an agent",
        f"{agent.wall_seconds:.1f} s",
        "< 60 s",
        correct and agent.wall_seconds < RETRY_TARGET,
        f"failboard agent --once, process start to exit ({rows / agent.wall_seconds:,.0f} "
        f"jobs/s); peak RSS {agent.peak_rss_bytes / 2**20:,.0f} MB; {check}",
        {
            "wall_s": agent.wall_seconds,
            "peak_rss_bytes": agent.peak_rss_bytes,
            "cpu_s": agent.cpu_seconds,
            "queued": queued,
            "left": left,
            "succeeded": succeeded,
        },
    )
    return [page, retry]

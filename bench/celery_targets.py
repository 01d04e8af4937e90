"""Issue #5's targets for Celery on PostgreSQL: what the recorder costs per failure, and retrying
10,000 (and, for #8, 100,000) failed tasks through a real agent.

Recording overhead, measured twice:

- **in the hook**: a real task fails (``task.apply()``, so Celery's tracer sends the real
  ``task_failure``) and the time between a receiver connected just before failboard's and one
  just after is the recorder's whole share: reading the request, formatting the traceback,
  redacting, encoding args, the write to PostgreSQL (one autocommit INSERT).
- **in a worker**: a real ``celery worker`` (solo pool, Redis broker) works through N failing
  tasks with the recorder and again without; the difference of the mean time per task is what a
  worker pays per failure.

Retry: N failure rows, as the recorder writes them (``Failure.row`` with kombu's JSON), are built
once into a template database and cloned for every run; one ``retry_queue`` action goes through a
spool on PostgreSQL to ``failboard agent --once``, which re-sends every task with the project's
Celery app to Redis. The messages are then counted in the broker's list (no worker runs them).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from bench.procs import LOG_DIR, run_measured, stop
from bench.projects import write_projects_config
from bench.results import Result, log, ms, percentile
from bench.services import (
    DATA_DIR,
    clone_database,
    database_url,
    drop_database,
    ensure_database,
    recreate_database,
)
from failboard.db import create_engine
from failboard.failures import Failure, create_failures_table
from failboard.models import ActionKind, ActionStatus
from failboard.spool import Spool

__all__ = ["ensure_celery_template", "retry_celery", "run"]

OVERHEAD_TARGET = 0.005
RETRY_TARGET = 30.0
TARGET_RSS = 200 * 1024 * 1024
PROJECT = "celery"
QUEUE = "billing"
BROKER_DB = 11
BROKER = f"redis://127.0.0.1:6379/{BROKER_DB}"
_META = "fb_bench_celery_meta"
_VERSION = 1


def _mb(value: int) -> str:
    return f"{value / 1024 / 1024:,.0f} MB"


def _env() -> dict[str, str]:
    """The children's environment: the bench's app importable, the broker ours."""
    path = os.environ.get("PYTHONPATH", "")
    root = str(Path(__file__).resolve().parent.parent)
    return {
        **os.environ,
        "PYTHONPATH": f"{path}:{root}" if path else root,
        "FB_BENCH_CELERY_BROKER": BROKER,
    }


# -- the recording overhead --------------------------------------------------------------------


def _hook_overhead(url: str, count: int) -> tuple[list[float], list[float], list[float]]:
    """(recorder's share of each failure, task.apply() without, with the recorder) in seconds."""
    from celery import signals

    import failboard.integrations.celery as integration
    from bench.celery_app import app, charge

    order = {"id": 1, "items": [{"sku": f"sku_{i}", "qty": i} for i in range(20)]}
    started: list[float] = []
    shares: list[float] = []

    def before(**_: Any) -> None:
        started.append(time.perf_counter())

    def after(**_: Any) -> None:
        shares.append(time.perf_counter() - started[-1])

    def apply(i: int) -> None:
        charge.apply(args=(f"4242{i:06d}", 1_000 + i, order))

    without = []
    for i in range(count):
        t = time.perf_counter()
        apply(i)
        without.append(time.perf_counter() - t)
    signals.task_failure.connect(before, weak=False, dispatch_uid="bench-before")
    recorder = integration.install(app, url=url, project=PROJECT)
    signals.task_failure.connect(after, weak=False, dispatch_uid="bench-after")
    try:
        apply(-1)  # creates the table and opens the connection: not a failure's usual cost
        shares.clear()
        with_recorder = []
        for i in range(count):
            t = time.perf_counter()
            apply(i)
            with_recorder.append(time.perf_counter() - t)
        if recorder.stats.recorded != count + 1 or recorder.stats.dropped:
            raise RuntimeError(f"recorder: {recorder.stats}")
    finally:
        signals.task_failure.disconnect(dispatch_uid="bench-before")
        signals.task_failure.disconnect(dispatch_uid="bench-after")
        signals.task_failure.disconnect(dispatch_uid=f"failboard-{id(app)}-failure")
        recorder.close()
    return shares, without, with_recorder


def _worker_run(count: int, failures_url: str | None) -> list[float]:
    """Stamps (epoch seconds) of ``count`` failing tasks run by a real solo worker."""
    from bench.celery_app import charge

    client = redis.Redis.from_url(BROKER)
    client.delete(QUEUE)
    order = {"id": 1, "items": [{"sku": f"sku_{i}", "qty": i} for i in range(20)]}
    with charge.app.producer_or_acquire() as producer:
        for i in range(count):
            charge.apply_async(args=(f"4242{i:06d}", 1_000 + i, order), producer=producer)
    stamps = DATA_DIR / "celery-stamps.txt"
    stamps.unlink(missing_ok=True)
    env = {**_env(), "FB_BENCH_CELERY_STAMPS": str(stamps)}
    env.pop("FB_BENCH_CELERY_FAILURES", None)
    if failures_url:
        env["FB_BENCH_CELERY_FAILURES"] = failures_url
    name = "with" if failures_url else "without"
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / f"celery-worker-{name}.log").open("wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker", "-P", "solo",
             "-Q", QUEUE, "--without-heartbeat", "--without-gossip", "--without-mingle",
             "-l", "ERROR"],
            stdout=output, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = stamps.read_text().count("\n") if stamps.exists() else 0
            if done >= count:
                break
            if worker.poll() is not None:
                raise RuntimeError(f"celery worker exited; see {output.name}")
            time.sleep(0.2)
    finally:
        stop(worker)
        client.close()
    return sorted(float(line) for line in stamps.read_text().split())


def _overhead(quick: bool) -> list[Result]:
    url = recreate_database("postgres", "fb_bench_celery_rec")
    try:
        count = 200 if quick else 1_000
        log(f"celery: recorder overhead in the hook, {count:,} real failures (task.apply)")
        shares, without, with_recorder = _hook_overhead(url, count)
        workers = 200 if quick else 1_000
        log(f"celery: a real solo worker on {workers:,} failing tasks, without then with")
        plain = _worker_run(workers, None)
        recorded_stamps = _worker_run(workers, url)
        engine = create_engine(url)
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT count(*) FROM failboard_failures WHERE project = :p"),
                {"p": PROJECT},
            ).scalar_one() - (count + 1)  # the in-hook run's rows were written first
        engine.dispose()
    finally:
        drop_database("postgres", "fb_bench_celery_rec")
    median, p95 = statistics.median(shares), percentile(shares, 0.95)
    applied = statistics.median(with_recorder) - statistics.median(without)

    def per_task(stamps: list[float]) -> float:
        return (stamps[-1] - stamps[0]) / (len(stamps) - 1)

    worker_cost = per_task(recorded_stamps) - per_task(plain)
    bench = "celery recorder → PostgreSQL"
    return [
        Result(
            bench,
            "overhead per failure, in the hook",
            f"{ms(median)} (p95 {ms(p95)})",
            "< 5 ms median",
            median < OVERHEAD_TARGET,
            f"{count:,} real task failures (Celery's tracer, task_failure); time between "
            f"receivers just before and after failboard's; task.apply() median "
            f"{ms(statistics.median(without))} without, {ms(statistics.median(with_recorder))} "
            f"with (+{ms(applied)})",
            {"median_s": median, "p95_s": p95, "n": len(shares), "apply_delta_s": applied},
        ),
        Result(
            bench,
            "overhead per failure, real worker",
            f"+{ms(worker_cost)} per task",
            "< 5 ms",
            worker_cost < OVERHEAD_TARGET,
            f"celery worker -P solo on Redis, {workers:,} failing tasks: "
            f"{ms(per_task(plain))}/task without the recorder, {ms(per_task(recorded_stamps))} "
            f"with; {rows:,} rows recorded",
            {
                "per_task_without_s": per_task(plain),
                "per_task_with_s": per_task(recorded_stamps),
                "rows": rows,
            },
        ),
    ]


# -- retry through the agent -------------------------------------------------------------------


def _failures(count: int, seed: int) -> list[dict[str, Any]]:
    from kombu.utils.json import dumps

    rng = random.Random(seed)
    anchor = datetime.now(UTC)
    frames = "".join(
        f'  File "/app/billing/gateway.py", line {100 + i}, in _authorize\n'
        "    _authorize(card, amount, depth - 1)\n"
        for i in range(8)
    )
    rows = []
    for i in range(count):
        card = f"4242{rng.randint(0, 10**8):08d}"
        amount = rng.randint(100, 100_000)
        message = f"card {card} declined for {amount} cents: do_not_honor"
        order = {
            "id": rng.randint(1, 10**7),
            "customer": f"cus_{rng.getrandbits(40):010x}",
            "items": [
                {"sku": f"sku_{rng.randint(1, 99_999)}", "qty": rng.randint(1, 9), "note": "x" * 30}
                for _ in range(rng.randint(5, 25))
            ],
        }
        trace = (
            "Traceback (most recent call last):\n"
            '  File "/venv/lib/python3.12/site-packages/celery/app/trace.py", line 453, in '
            "trace_task\n    R = retval = fun(*args, **kwargs)\n"
            f"{frames}bench.celery_app.CardDeclined: {message}\n"
        )
        failure = Failure(
            engine="celery",
            job_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            name="billing.charge",
            queue=QUEUE,
            args=[card, amount, order],
            kwargs={},
            exception_class="bench.celery_app.CardDeclined",
            exception_message=message,
            traceback=trace,
            attempts=1,
            worker=f"celery@worker-{i % 4}",
            options={"exchange": "", "routing_key": QUEUE},
            failed_at=anchor - timedelta(seconds=rng.uniform(0, 30 * 86_400)),
        )
        rows.append(failure.row(PROJECT, dumps=dumps))
    return rows


def ensure_celery_template(rows: int) -> str:
    """A PostgreSQL database holding ``rows`` Celery failures of project ``celery`` (built once,
    kept while its version and row count match); its name."""
    name = f"fb_bench_celery_{rows // 1000}k"
    url = database_url("postgres", name)
    ensure_database("postgres", name)
    engine = create_engine(url, timeout=30.0)
    try:
        with engine.connect() as connection:
            try:
                meta = connection.execute(sa.text(f"SELECT version, row_count FROM {_META}")).one()
                if tuple(meta) == (_VERSION, rows):
                    log(f"celery template {name}: {rows:,} failures, reused")
                    return name
            except sa.exc.ProgrammingError:
                pass
    finally:
        engine.dispose()
    started = time.perf_counter()
    url = recreate_database("postgres", name)
    engine = create_engine(url, timeout=30.0)
    try:
        table = create_failures_table(engine)
        for start in range(0, rows, 10_000):
            chunk = _failures(min(10_000, rows - start), seed=start + 17)
            with engine.begin() as connection:
                connection.execute(table.insert(), chunk)
        with engine.begin() as connection:
            connection.execute(sa.text(f"CREATE TABLE {_META} (version int, row_count int)"))
            connection.execute(
                sa.text(f"INSERT INTO {_META} VALUES (:v, :n)"), {"v": _VERSION, "n": rows}
            )
    finally:
        engine.dispose()
    log(f"celery template {name}: {rows:,} failures built in {time.perf_counter() - started:.0f} s")
    return name


def retry_celery(rows: int, bench: str, target: float | None) -> list[Result]:
    """``retry_queue`` of ``rows`` Celery failures through a real agent; the messages counted."""
    template = ensure_celery_template(rows)
    store = clone_database(template, f"{template}_run")
    spool_url = recreate_database("postgres", "fb_bench_spool_celery")
    client = redis.Redis.from_url(BROKER)
    client.delete(QUEUE)
    with Spool(spool_url) as spool:
        spool.migrate()
        action = spool.submit(PROJECT, ActionKind.RETRY_QUEUE, {"queue": QUEUE})
    config = write_projects_config(
        DATA_DIR / "celery-retry.toml",
        spool_url,
        [{"key": PROJECT, "driver": "celery", "url": store, "app": "bench.celery_app:app"}],
    )
    log(f"celery: failboard agent --once, retry_queue of {rows:,} failed tasks")
    saved = dict(os.environ)
    os.environ.update(_env())
    try:
        agent = run_measured(
            [sys.executable, "-m", "failboard", "agent", "--project", PROJECT, "--once",
             "--config", str(config)],
            f"agent-celery-{rows}.log",
        )  # fmt: skip
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with Spool(spool_url) as spool:
        done = spool.get(action.id)
    queued = int(client.llen(QUEUE))
    sample = client.lindex(QUEUE, 0)
    message = json.loads(sample) if sample else {}
    headers = message.get("headers", {})
    client.delete(QUEUE)
    client.close()
    engine = create_engine(store)
    with engine.connect() as connection:
        left = connection.execute(sa.text("SELECT count(*) FROM failboard_failures")).scalar_one()
    engine.dispose()
    drop_database("postgres", f"{template}_run")
    drop_database("postgres", "fb_bench_spool_celery")
    succeeded = done.result.succeeded if done.result else 0
    inside = (
        (done.finished_at - done.claimed_at).total_seconds()
        if done.finished_at and done.claimed_at
        else float("nan")
    )
    correct = (
        agent.exit_code == 0
        and done.status is ActionStatus.COMPLETED
        and succeeded == rows == queued
        and left == 0
        and headers.get("task") == "billing.charge"
        and bool(headers.get("failboard_retry_of"))
    )
    check = (
        f"{queued:,} messages in Redis list '{QUEUE}' (task {headers.get('task')}, "
        f"failboard_retry_of set: {bool(headers.get('failboard_retry_of'))}), {left} rows left, "
        f"{done.status.value} succeeded={succeeded:,}"
    )
    log(f"  {agent.wall_seconds:.1f} s, peak RSS {_mb(agent.peak_rss_bytes)}; {check}")
    data = {
        "wall_s": agent.wall_seconds,
        "action_s": inside,
        "jobs_per_s": rows / inside,
        "peak_rss_bytes": agent.peak_rss_bytes,
        "cpu_s": agent.cpu_seconds,
        "queued": queued,
        "left": left,
        "succeeded": succeeded,
        "status": done.status.value,
    }
    ok_time = agent.wall_seconds < target if target is not None else None
    return [
        Result(
            bench,
            "failboard agent --once: wall time",
            f"{agent.wall_seconds:.1f} s ({rows / inside:,.0f} jobs/s)",
            f"< {target:.0f} s" if target is not None else "",
            (correct and ok_time) if target is not None else (correct or False),
            f"the action {inside:.1f} s; agent CPU {agent.cpu_seconds:.1f} s; {check}",
            data,
        ),
        Result(
            bench,
            "failboard agent --once: peak RSS",
            _mb(agent.peak_rss_bytes),
            "< 200 MB",
            correct and agent.peak_rss_bytes < TARGET_RSS,
            "VmHWM of the agent process (imports the Celery app)",
            data,
        ),
    ]


def run(quick: bool = False) -> list[Result]:
    if shutil.which("celery", path=str(Path(sys.executable).parent)) is None:
        raise RuntimeError("celery is not installed in this venv (pip install -e '.[celery]')")
    rows = 2_000 if quick else 10_000
    return [
        *_overhead(quick),
        *retry_celery(
            rows, f"celery retry_queue {rows:,} tasks (PostgreSQL → Redis)", RETRY_TARGET
        ),
    ]

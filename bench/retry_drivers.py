"""Issue #8, bulk work per driver: ``retry_queue`` of 100,000 jobs through a real agent for RQ
(next to rq's own ``rq requeue --all``) and for the failures table (Celery, re-sent to Redis).
Laravel on PostgreSQL is :mod:`bench.retry_queue`.

RQ: 100,000 failed jobs in one queue (``default``), rebuilt in their own Redis database before
each run since a retry moves them. While the agent works, a probe thread sends ``PING`` every
few milliseconds: its slowest answer is how long Redis was blocked at most (the Lua batches).
The peer is rq's CLI, ``rq requeue --all --queue default``, from failboard's own venv (rq 3):
``FailedJobRegistry.requeue`` per job, each several round trips. Like the Laravel peer, it runs
by default on ``--peer-rows`` jobs (a dataset of that size) and is extrapolated by its rate.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import redis

from bench.celery_targets import retry_celery
from bench.procs import run_measured
from bench.projects import write_projects_config
from bench.results import Result, log, ms
from bench.rq_dataset import PREFIX, ensure_rq_dataset, rq_url
from bench.services import DATA_DIR, drop_database, recreate_database
from failboard.models import ActionKind, ActionStatus
from failboard.spool import Spool

__all__ = ["run"]

RQ_DB = 10
QUEUE = "default"
PROJECT = "rq"
TARGET_FACTOR = 20.0
TARGET_RSS = 200 * 1024 * 1024


def _mb(value: int) -> str:
    return f"{value / 1024 / 1024:,.0f} MB"


class _Probe(threading.Thread):
    """PING every 2 ms on its own connection; the slowest round trip seen."""

    def __init__(self, url: str) -> None:
        super().__init__(name="redis-probe", daemon=True)
        self.client = redis.Redis.from_url(url)
        self.worst = 0.0
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.002):
            started = time.perf_counter()
            self.client.ping()
            self.worst = max(self.worst, time.perf_counter() - started)
            self.samples += 1

    def stop(self) -> float:
        self._done.set()
        self.join()
        self.client.close()
        return self.worst


def _state(url: str) -> tuple[int, int, int]:
    """(ids in rq:queue:default, distinct ids there, entries left in the failed registry)."""
    client = redis.Redis.from_url(url)
    try:
        queued = client.lrange(f"{PREFIX}queue:{QUEUE}", 0, -1)
        return len(queued), len(set(queued)), int(client.zcard(f"{PREFIX}failed:{QUEUE}"))
    finally:
        client.close()


def _rq_failboard(url: str, rows: int) -> list[Result]:
    ensure_rq_dataset(url, rows, queues=(QUEUE,), rebuild=True, log=log)
    spool_url = recreate_database("postgres", "fb_bench_spool_rq")
    with Spool(spool_url) as spool:
        spool.migrate()
        action = spool.submit(PROJECT, ActionKind.RETRY_QUEUE, {"queue": QUEUE})
    config = write_projects_config(
        DATA_DIR / "rq-retry.toml", spool_url, [{"key": PROJECT, "driver": "rq", "url": url}]
    )
    log(f"rq: failboard agent --once, retry_queue of {rows:,} jobs")
    probe = _Probe(url)
    probe.start()
    agent = run_measured(
        [sys.executable, "-m", "failboard", "agent", "--project", PROJECT, "--once",
         "--config", str(config)],
        "agent-rq-retry.log",
    )  # fmt: skip
    worst = probe.stop()
    with Spool(spool_url) as spool:
        done = spool.get(action.id)
    drop_database("postgres", "fb_bench_spool_rq")
    queued, distinct, left = _state(url)
    succeeded = done.result.succeeded if done.result else 0
    missing = done.result.missing if done.result else 0
    inside = (
        (done.finished_at - done.claimed_at).total_seconds()
        if done.finished_at and done.claimed_at
        else float("nan")
    )
    correct = (
        agent.exit_code == 0
        and done.status is ActionStatus.COMPLETED
        and succeeded == rows == queued == distinct
        and left == 0
    )
    check = (
        f"{queued:,} ids in rq:queue:{QUEUE} ({distinct:,} distinct), {left} left in the failed "
        f"registry, {done.status.value} succeeded={succeeded:,} missing={missing}"
    )
    log(f"  {agent.wall_seconds:.1f} s, peak RSS {_mb(agent.peak_rss_bytes)}; {check}")
    data = {
        "wall_s": agent.wall_seconds,
        "action_s": inside,
        "jobs_per_s": rows / inside,
        "peak_rss_bytes": agent.peak_rss_bytes,
        "cpu_s": agent.cpu_seconds,
        "redis_worst_ping_s": worst,
        "probe_samples": probe.samples,
        "queued": queued,
        "left": left,
        "succeeded": succeeded,
    }
    bench = f"rq retry_queue {rows:,} jobs"
    return [
        Result(
            bench,
            "failboard agent --once: wall time",
            f"{agent.wall_seconds:.1f} s ({rows / inside:,.0f} jobs/s)",
            "",
            correct or False,
            f"the action {inside:.1f} s; agent CPU {agent.cpu_seconds:.1f} s; {check}",
            data,
        ),
        Result(
            bench,
            "failboard agent --once: peak RSS",
            _mb(agent.peak_rss_bytes),
            "< 200 MB",
            correct and agent.peak_rss_bytes < TARGET_RSS,
            "VmHWM of the agent process",
            data,
        ),
        Result(
            bench,
            "Redis blocked at most (PING probe)",
            ms(worst),
            "~10 ms",
            worst <= 0.015,
            f"slowest of {probe.samples:,} PINGs sent every 2 ms during the agent's run "
            "(Lua batches of 500 jobs); a client-side probe: on a loaded box it also counts the "
            "probe thread waiting for a core",
            data,
        ),
    ]


def _rq_peer(url: str, rows: int, peer_rows: int | None) -> tuple[Result, float]:
    count = rows if peer_rows is None else min(rows, peer_rows)
    ensure_rq_dataset(url, count, queues=(QUEUE,), rebuild=True, log=log)
    log(f"rq: peer `rq requeue --all --queue {QUEUE}` on {count:,} of {rows:,} jobs")
    rq_cli = str(Path(sys.executable).parent / "rq")
    peer = run_measured(
        [rq_cli, "requeue", "--all", "--queue", QUEUE, "-u", url], "peer-rq-requeue.log", 1_800
    )
    queued, distinct, left = _state(url)
    rate = count / peer.wall_seconds
    estimate = rows / rate
    whole = count == rows
    measured = f"{peer.wall_seconds:.1f} s" if whole else f"≈{estimate:.0f} s (extrapolated)"
    check = f"{queued:,} ids queued ({distinct:,} distinct), {left} left in the registry"
    log(f"  {peer.wall_seconds:.1f} s for {count:,} ({rate:,.0f} jobs/s); {check}")
    return (
        Result(
            f"rq retry_queue {rows:,} jobs",
            "peer: rq requeue --all (rq 3.0 CLI)",
            f"{measured} ({rate:,.0f} jobs/s), RSS {_mb(peer.peak_rss_bytes)}",
            "",
            None if peer.exit_code == 0 and queued == count and left == 0 else False,
            f"FailedJobRegistry.requeue per job; timed on {count:,} jobs"
            + ("" if whole else f", x {rows // count}")
            + f"; {check}",
            {
                "wall_s": peer.wall_seconds,
                "estimate_s": estimate,
                "jobs": count,
                "peak_rss_bytes": peer.peak_rss_bytes,
                "exit_code": peer.exit_code,
            },
        ),
        estimate,
    )


def run(quick: bool = False, peer_rows: int | None = 20_000) -> list[Result]:
    rows = 10_000 if quick else 100_000
    url = rq_url(RQ_DB)
    ours = _rq_failboard(url, rows)
    peer, estimate = _rq_peer(url, rows, peer_rows)
    wall = float(ours[0].data["wall_s"])
    factor = estimate / wall
    speed = Result(
        f"rq retry_queue {rows:,} jobs",
        "failboard vs rq requeue --all",
        f"{factor:,.0f}x faster",
        f"≥ {TARGET_FACTOR:.0f}x",
        bool(ours[0].met) and factor >= TARGET_FACTOR,
        "agent wall time (process start to exit) vs the peer's time for the same jobs",
        {"factor": factor},
    )
    celery = retry_celery(rows, f"celery retry_queue {rows:,} tasks (PostgreSQL → Redis)", None)
    return [*ours, peer, speed, *celery]

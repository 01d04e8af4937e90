"""Target 2: ``retry_queue`` of 100,000 failed jobs of one project, through the spool and a real
agent process, next to Laravel's own ``queue:retry all`` doing the same work.

The 100,000 jobs (database connection, queue ``default``, PostgreSQL) are built once into a
template database; every run works on a fresh copy of it, since a retry empties ``failed_jobs``.
The spool is its own PostgreSQL database, as a central dashboard's would be.
"""

from __future__ import annotations

import json
import sys

import sqlalchemy as sa

from bench.data import ensure_dataset
from bench.procs import LOG_DIR, Measured, run_measured, write_config
from bench.results import Result, log
from bench.services import DATA_DIR, clone_database, drop_database, recreate_database
from failboard.db import create_engine
from failboard.models import ActionKind, ActionStatus
from failboard.spool import Spool

__all__ = ["run"]

TARGET_SECONDS = 30.0
TARGET_RSS = 200 * 1024 * 1024
QUEUE = "default"
PROJECT = "bench"


def _mb(value: int) -> str:
    return f"{value / 1024 / 1024:,.0f} MB"


def _left(url: str) -> tuple[int, int, int]:
    """(rows in jobs, distinct job uuids in jobs, failed_jobs rows left in QUEUE)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            pushed = connection.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one()
            distinct = connection.execute(
                sa.text("SELECT count(DISTINCT (payload::json)->>'uuid') FROM jobs")
            ).scalar_one()
            left = connection.execute(
                sa.text("SELECT count(*) FROM failed_jobs WHERE queue = :queue"), {"queue": QUEUE}
            ).scalar_one()
    finally:
        engine.dispose()
    return int(pushed), int(distinct), int(left)


def _failboard(template: str, rows: int) -> tuple[Result, ...]:
    store = clone_database(template, f"{template}_run")
    spool_url = recreate_database("postgres", "fb_bench_spool_retry")
    with Spool(spool_url) as spool:
        spool.migrate()
        action = spool.submit(PROJECT, ActionKind.RETRY_QUEUE, {"queue": QUEUE})
    config = write_config(DATA_DIR / "retry_queue.toml", spool_url, [(PROJECT, store)])
    log(f"retry_queue: failboard agent --once on {rows:,} jobs")
    agent = run_measured(
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
        "agent-retry-queue.log",
    )
    with Spool(spool_url) as spool:
        done = spool.get(action.id)
    pushed, distinct, left = _left(store)
    drop_database("postgres", f"{template}_run")
    drop_database("postgres", "fb_bench_spool_retry")
    succeeded = done.result.succeeded if done.result else 0
    correct = (
        agent.exit_code == 0
        and done.status is ActionStatus.COMPLETED
        and succeeded == rows
        and pushed == distinct == rows
        and left == 0
    )
    inside = (
        (done.finished_at - done.claimed_at).total_seconds()
        if done.finished_at and done.claimed_at
        else float("nan")
    )
    check = (
        f"{pushed:,} jobs rows / {distinct:,} uuids, {left} left in failed_jobs, "
        f"{done.status.value} with succeeded={succeeded:,}"
    )
    log(f"  {agent.wall_seconds:.1f} s, peak RSS {_mb(agent.peak_rss_bytes)}; {check}")
    bench = f"retry_queue {rows:,} jobs (PostgreSQL)"
    data = {
        "wall_s": agent.wall_seconds,
        "action_s": inside,
        "peak_rss_bytes": agent.peak_rss_bytes,
        "cpu_s": agent.cpu_seconds,
        "exit_code": agent.exit_code,
        "pushed": pushed,
        "distinct": distinct,
        "left": left,
        "succeeded": succeeded,
        "status": done.status.value,
    }
    return (
        Result(
            bench,
            "failboard agent --once: wall time",
            f"{agent.wall_seconds:.1f} s",
            "< 30 s",
            correct and agent.wall_seconds < TARGET_SECONDS,
            f"process start to exit; the action {inside:.1f} s ({rows / inside:,.0f} jobs/s); "
            f"agent CPU {agent.cpu_seconds:.1f} s; {check}",
            data,
        ),
        Result(
            bench,
            "failboard agent --once: peak RSS",
            _mb(agent.peak_rss_bytes),
            "< 200 MB",
            correct and agent.peak_rss_bytes < TARGET_RSS,
            "VmHWM of the agent process; batches of 1,000 jobs",
            data,
        ),
    )


def _peer(template: str, rows: int, peer_rows: int | None) -> Result:
    store = clone_database(template, f"{template}_peer")
    loop = rows if peer_rows is None else min(rows, peer_rows)
    log(f"retry_queue: peer (queue:retry all, row by row) on {loop:,} of {rows:,} jobs")
    command = [sys.executable, "-m", "bench.peer_retry", store]
    if peer_rows is not None:
        command += ["--limit", str(peer_rows)]
    peer: Measured = run_measured(command, "peer-retry.log", timeout=1_800)
    output = (LOG_DIR / "peer-retry.log").read_text(encoding="utf-8").strip().splitlines()
    timings = json.loads(output[-1]) if peer.exit_code == 0 and output else {}
    pushed, distinct, left = _left(store)
    drop_database("postgres", f"{template}_peer")
    retried = int(timings.get("retried", 0))
    load = float(timings.get("load_seconds", float("nan")))
    per_job = float(timings.get("loop_seconds", float("nan"))) / max(1, retried)
    # With --limit the loop ran on part of the table; its per-job cost times the whole table
    # is the full run's time (each job costs the same three statements).
    estimate = load + per_job * rows
    whole = retried == rows
    measured = f"{peer.wall_seconds:.1f} s" if whole else f"≈{estimate:.0f} s (extrapolated)"
    check = f"{pushed:,} jobs rows / {distinct:,} uuids, {left:,} left in failed_jobs"
    log(f"  {measured}, peak RSS {_mb(peer.peak_rss_bytes)}; {check}")
    return Result(
        f"retry_queue {rows:,} jobs (PostgreSQL)",
        "peer: Laravel queue:retry all (SQL replay)",
        f"{measured}, RSS {_mb(peer.peak_rss_bytes)}",
        "",
        None,
        f"whole table loaded in {load:.1f} s, then SELECT + INSERT + DELETE per job "
        f"(autocommit): {per_job * 1000:.2f} ms/job"
        + ("" if whole else f", timed on {retried:,} jobs, x {rows:,}")
        + f"; {check}",
        {
            "wall_s": peer.wall_seconds,
            "estimate_s": estimate,
            "load_s": load,
            "per_job_s": per_job,
            "retried": retried,
            "peak_rss_bytes": peer.peak_rss_bytes,
            "cpu_s": peer.cpu_seconds,
            "exit_code": peer.exit_code,
            "pushed": pushed,
            "distinct": distinct,
            "left": left,
        },
    )


def run(quick: bool = False, peer_rows: int | None = None) -> list[Result]:
    rows = 10_000 if quick else 100_000
    template = f"fb_bench_retry_{rows // 1000}k"
    ensure_dataset("postgres", template, rows, seed=7, connection="database", queue=QUEUE, log=log)
    return [*_failboard(template, rows), _peer(template, rows, peer_rows)]

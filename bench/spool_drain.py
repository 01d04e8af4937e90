"""Target 3: 20 agent processes draining 10,000 actions of one project, on PostgreSQL and on
MariaDB, each action a real retry of one real job.

Throughput is measured on the database clock, from the first claim to the last outcome, so
process start-up is left out. Correctness is proved from two ledgers that the agents cannot
fake: the project's ``jobs`` table (each job pushed exactly once) and the spool's append-only
events (each action claimed exactly once, completed exactly once, never reaped).

Where the time goes: each agent runs as ``python -m bench.timed_agent`` — the real CLI with a
stopwatch on its spool calls (claim, heartbeat, progress, complete, settle, record_agent) and the
executor's ``retry`` — so claim latency is the real agents' own, and the sum of each kind of
call over all agents says which one the drain waits on.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import sqlalchemy as sa

from bench.data import failed_job_rows
from bench.procs import LOG_DIR, stop, write_config
from bench.results import Result, log, ms, percentile
from bench.services import DATA_DIR, Kind, drop_database, recreate_database
from failboard.config import AgentSettings
from failboard.db import create_engine
from failboard.drivers.laravel.schema import create_tables, insert_failed_jobs
from failboard.models import ActionKind, ActionStatus
from failboard.spool import EventKind, Spool

__all__ = ["run"]

AGENTS = 20
PROJECT = "bench"
DATABASE = "fb_bench_drain"
DRAIN_TIMEOUT = 900.0
TARGET_RATE = 1_000.0
DEFAULT_LIMIT = AgentSettings.model_fields["limit"].default  # the agents' own default
OPS = (
    "claim",
    "heartbeat",
    "executor.retry",
    "executor.retry_each",
    "progress",
    "complete",
    "settle",
    "record_agent",
)


def _seed(url: str, count: int) -> list[str]:
    engine = create_engine(url, timeout=30.0)
    try:
        create_tables(engine)
        rows = list(
            failed_job_rows(count, seed=11, anchor=datetime.now(UTC), connection="database")
        )
        with engine.begin() as connection:
            insert_failed_jobs(connection, rows)
    finally:
        engine.dispose()
    return [row["uuid"] for row in rows]


def _wait_drained(spool: Spool, count: int) -> float:
    """Poll until no action is open; the seconds it took."""
    a = spool.tables.actions
    query = sa.select(sa.func.count()).where(
        a.c.project == PROJECT,
        a.c.status.in_((ActionStatus.PENDING.value, ActionStatus.PROCESSING.value)),
    )
    started = time.perf_counter()
    while time.perf_counter() - started < DRAIN_TIMEOUT:
        with spool.engine.connect() as connection:
            if connection.execute(query).scalar_one() == 0:
                break
        time.sleep(0.2)
    return time.perf_counter() - started


def _ledger(url: str, spool: Spool, uuids: list[str]) -> dict[str, int | float]:
    a, e = spool.tables.actions, spool.tables.events
    engine = create_engine(url, timeout=30.0)
    try:
        with engine.connect() as connection:
            payloads = connection.execute(sa.text("SELECT payload FROM jobs")).scalars().all()
            left = connection.execute(sa.text("SELECT count(*) FROM failed_jobs")).scalar_one()
            actions = connection.execute(
                sa.select(a.c.id, a.c.status, a.c.result, a.c.claimed_by).where(
                    a.c.project == PROJECT
                )
            ).all()
            events = connection.execute(
                sa.select(e.c.kind, sa.func.count(), sa.func.count(sa.distinct(e.c.action_id)))
                .where(e.c.action_id.in_([row.id for row in actions]))
                .group_by(e.c.kind)
            ).all()
            span = connection.execute(
                sa.select(sa.func.min(a.c.claimed_at), sa.func.max(a.c.finished_at)).where(
                    a.c.project == PROJECT
                )
            ).one()
    finally:
        engine.dispose()
    pushed = Counter(json.loads(payload)["uuid"] for payload in payloads)
    by_kind = {kind: (int(total), int(distinct)) for kind, total, distinct in events}
    claimed, claimed_actions = by_kind.get(EventKind.CLAIMED, (0, 0))
    completed_events, _ = by_kind.get(EventKind.COMPLETED, (0, 0))
    completed = [row for row in actions if row.status == ActionStatus.COMPLETED.value]
    succeeded = sum(json.loads(row.result)["succeeded"] for row in completed if row.result)
    return {
        "actions": len(actions),
        "completed": len(completed),
        "succeeded": succeeded,
        "agents_used": len({row.claimed_by for row in actions}),
        "jobs_rows": sum(pushed.values()),
        "jobs_pushed_twice": sum(n - 1 for n in pushed.values() if n > 1),
        "jobs_never_pushed": len(set(uuids) - set(pushed)),
        "failed_jobs_left": int(left),
        "claimed_events": claimed,
        "claimed_twice": claimed - claimed_actions,
        "completed_events": completed_events,
        "reaped_events": by_kind.get(EventKind.REAPED, (0, 0))[0],
        "span_s": (span[1] - span[0]).total_seconds() if span[0] and span[1] else float("nan"),
    }


def _timed_agent(config: str, out: str, log_name: str) -> subprocess.Popen[bytes]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (LOG_DIR / log_name).open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.timed_agent", out, "agent", "--project", PROJECT,
             "--config", config],
            stdout=output, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


def _timings(files: list[str]) -> dict[str, object]:
    """Every agent's stopwatch merged: per operation count, total, median, p95 (seconds)."""
    times: dict[str, list[float]] = {}
    claimed: list[int] = []
    cpu = 0.0
    for name in files:
        try:
            with open(name, encoding="utf-8") as f:
                one = json.load(f)
        except (OSError, ValueError):
            continue
        for op, values in one["times"].items():
            times.setdefault(op, []).extend(values)
        claimed += one["claimed"]
        cpu += one["cpu_s"]
    ops = {
        op: {
            "calls": len(values),
            "total_s": sum(values),
            "median_s": statistics.median(values),
            "p95_s": percentile(values, 0.95),
        }
        for op, values in times.items()
        if values
    }
    busy = [n for n in claimed if n]
    return {
        "ops": ops,
        "claims": len(claimed),
        "empty_claims": len(claimed) - len(busy),
        "per_claim": statistics.mean(busy) if busy else 0.0,
        "agents_cpu_s": cpu,
    }


def _drain(kind: Kind, count: int, agents_n: int, limit: int) -> Result:
    url = recreate_database(kind, DATABASE)
    log(f"spool: {agents_n} agents (limit {limit}) draining {count:,} retry actions on {kind}")
    uuids = _seed(url, count)
    spool = Spool(url)
    outs = [str(DATA_DIR / f"drain-{kind}-{n}.json") for n in range(agents_n)]
    try:
        spool.migrate()
        for uuid in uuids:
            spool.submit(PROJECT, ActionKind.RETRY, {"job_ids": [uuid]})
        config = write_config(
            DATA_DIR / f"drain-{kind}.toml",
            url,
            [(PROJECT, url)],
            # The default limit is left out: the agents claim as they do when nobody tunes them.
            agent="interval_seconds = 0.2"
            + (f"\nlimit = {limit}" if limit != DEFAULT_LIMIT else ""),
        )
        for out in outs:
            if os.path.exists(out):
                os.unlink(out)
        agents = [
            _timed_agent(str(config), outs[n], f"drain-{kind}-{n}.log") for n in range(agents_n)
        ]
        try:
            wall = _wait_drained(spool, count)
        finally:
            codes = [stop(agent) for agent in agents]
        ledger = _ledger(url, spool, uuids)
    finally:
        spool.close()
        drop_database(kind, DATABASE)
    timing = _timings(outs)
    duplicates = int(ledger["jobs_pushed_twice"]) + int(ledger["claimed_twice"])
    lost = (count - int(ledger["completed"])) + int(ledger["jobs_never_pushed"])
    span = float(ledger["span_s"])
    rate = count / span
    clean = (
        duplicates == 0
        and lost == 0
        and ledger["succeeded"] == count
        and ledger["completed_events"] == count
        and ledger["reaped_events"] == 0
        and ledger["failed_jobs_left"] == 0
        and codes == [0] * agents_n
    )
    ops: dict[str, dict[str, float]] = timing["ops"]  # type: ignore[assignment]
    claim = ops.get("claim", {"median_s": float("nan"), "p95_s": float("nan")})
    split = "; ".join(
        f"{op} {ops[op]['calls']:,} calls {ms(ops[op]['median_s'])} (p95 {ms(ops[op]['p95_s'])}, "
        f"sum {ops[op]['total_s']:.0f} s)"
        for op in OPS
        if op in ops
    )
    log(f"  {rate:,.0f} actions/s; duplicates {duplicates}, lost {lost}; {ledger}; {split}")
    target = TARGET_RATE if kind == "postgres" else None
    return Result(
        f"spool: {agents_n} agents, {count:,} actions"
        + (f", limit {limit}" if limit != DEFAULT_LIMIT else ""),
        "PostgreSQL" if kind == "postgres" else "MariaDB",
        f"{rate:,.0f} actions/s; claim {ms(claim['median_s'])} (p95 {ms(claim['p95_s'])})",
        "0 dup, 0 lost" + (", ≥ 1,000/s" if target else ""),
        clean and (target is None or rate >= target),
        f"{duplicates} duplicates, {lost} lost: {ledger['jobs_rows']:,} jobs rows / "
        f"{count:,} uuids, {ledger['claimed_events']:,} claimed + "
        f"{ledger['completed_events']:,} completed events, {ledger['reaped_events']} reaped, "
        f"{ledger['failed_jobs_left']} left; {span:.1f} s first claim → last outcome; "
        f"{ledger['agents_used']} agents, exit {set(codes)}; {timing['claims']:,} claims "
        f"({timing['empty_claims']:,} empty, {timing['per_claim']:.1f} actions per non-empty), "
        f"agents' CPU {timing['agents_cpu_s']:.0f} s; per call: {split}",
        {
            **ledger,
            "kind": kind,
            "limit": limit,
            "load": os.getloadavg(),
            "rate": rate,
            "wall_s": wall,
            "exit_codes": codes,
            "timing": timing,
        },
    )


def run(
    quick: bool = False,
    agents: int | None = None,
    count: int | None = None,
    limit: int | None = None,
) -> list[Result]:
    """Both servers. ``FAILBOARD_BENCH_DRAIN_AGENTS`` / ``_LIMIT`` / ``_KINDS`` (comma-separated
    ``postgres,mysql``) change the agent count, the agents' ``[agent] limit`` and the servers
    for a run of ``--only spool`` without changing the issue's default case."""
    env = os.environ.get
    agents = agents or int(env("FAILBOARD_BENCH_DRAIN_AGENTS", "0")) or (4 if quick else AGENTS)
    count = count or (500 if quick else 10_000)
    limit = limit or int(env("FAILBOARD_BENCH_DRAIN_LIMIT", "0")) or DEFAULT_LIMIT
    wanted = env("FAILBOARD_BENCH_DRAIN_KINDS", "postgres,mysql").split(",")
    kinds: list[Kind] = [kind for kind in ("postgres", "mysql") if kind in wanted]
    return [_drain(kind, count, agents, limit) for kind in kinds]

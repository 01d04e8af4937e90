"""Issue #6's "Done when", end to end: a Laravel-shaped project on the database queue (PostgreSQL,
MariaDB, SQLite), the Redis queue and Horizon (listing from the table, or from Horizon's own
records), plus ``executor = "artisan"`` where it applies (the database queue, on the stand-in) —
list, view, retry, delete, retry one queue and prune, each through the real path: the API or the
CLI writes a spool action, a real agent (in process, or ``failboard agent --once`` as a process)
claims and runs it, and then the WHOLE of every store is compared with what the artisan command
would have left: every ``failed_jobs`` and ``jobs`` row, every Redis key under the application's
prefixes with its type, contents, scores and expiry.

The expected state is worked out here, in the test, from Laravel's and Horizon's source
(``RetryCommand``, ``DatabaseQueue``/``RedisQueue::pushRaw``, ``ForgetFailedCommand``,
``RetryFailedJob``, ``RedisJobRepository``, ``JobPayload::prepare``, ``PruneFailedJobsCommand``) —
never with failboard's own functions. Times come from the real clock, so the values a command
takes from "now" are checked to lie between the moments before and after the agent ran.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from failboard.agent import Agent
from failboard.board import Board
from failboard.cli import app as cli_app
from failboard.config import Settings, parse_settings
from failboard.db import create_engine
from failboard.drivers import registry
from failboard.drivers.laravel.payload import build_payload, php_json_encode, php_serialize_object
from failboard.drivers.laravel.schema import (
    create_tables,
    failed_jobs_table,
    insert_failed_jobs,
    queue_jobs_table,
)
from failboard.models import Action, JobQuery
from failboard.web import create_app
from tests.rq_jobs import fresh_prefix
from tests.services import IN_CI, fresh_database

STANDIN = Path(__file__).resolve().parents[1] / "php" / "artisan"
TRIM_FAILED = 10_080  # horizon.trim.failed (minutes): the expiry Horizon gives a failed job
PENDING_MINUTES = 60  # horizon.trim.pending: the expiry of a re-pushed job's record
TAG = "App\\Models\\Invoice:7"
HORIZON_SETUPS = ("horizon", "horizon-records")

# (setup, database): every setup on every database where the database matters to it.
CASES = [
    *(
        (setup, kind)
        for setup in ("database", "redis", "horizon")
        for kind in ("sqlite", "postgres", "mysql")
    ),
    ("horizon-records", "sqlite"),
    ("artisan", "sqlite"),
]


# -- matchers for what a command takes from the clock ----------------------------------------


@dataclass(frozen=True)
class Between:
    """A number (or a PHP ``microtime(true)`` string when ``text``) from ``low`` to ``high``."""

    low: float
    high: float
    text: bool = False

    def __eq__(self, other: object) -> bool:
        if self.text:
            # str_replace(',', '.', microtime(true)): at most 4 decimals, no exponent.
            if not isinstance(other, str) or not re.fullmatch(r"-?\d+(\.\d{1,4})?", other):
                return False
            value = float(other)
        elif isinstance(other, int | float) and not isinstance(other, bool):
            value = float(other)
        else:
            return False
        return self.low <= value <= self.high

    def __hash__(self) -> int:
        return hash((self.low, self.high, self.text))


@dataclass(frozen=True)
class Moment:
    """The wall-clock window an action ran in."""

    low: float
    high: float

    def seconds(self, plus: float = 0) -> Between:
        """``time()`` (+ ``plus``) as PHP's ``time()`` or Carbon's ``getTimestamp()``."""
        return Between(math.floor(self.low) + plus, math.ceil(self.high) + plus)

    def microtime(self) -> Between:
        return Between(self.low - 0.001, self.high + 0.001, text=True)

    def score(self, sign: int = -1) -> Between:
        a, b = sign * self.low, sign * self.high
        return Between(min(a, b) - 0.001, max(a, b) + 0.001)


def ordered(value: Any) -> Any:
    """JSON with its key order made part of equality (PHP arrays keep their order)."""
    if isinstance(value, dict):
        return [(key, ordered(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [ordered(item) for item in value]
    return value


def _json(text: Any) -> Any:
    try:
        return ordered(json.loads(text))
    except (TypeError, ValueError):
        return text


# -- a Laravel application's stores ----------------------------------------------------------


class LaravelApp:
    """One application's ``failed_jobs``/``jobs`` tables and its Redis (queue prefix and Horizon
    prefix under a test-only prefix), written the way Laravel's worker and Horizon write them."""

    def __init__(self, setup: str, url: str, client: Any, redis_url: str, prefix: str) -> None:
        self.setup = setup
        self.url = url
        self.engine = create_engine(url)
        create_tables(self.engine)
        self.client = client
        self.redis_url = redis_url
        self.prefix = prefix
        self.queue_prefix = f"{prefix}laravel_database_"
        self.horizon_prefix = f"{prefix}laravel_horizon:"
        self.horizon = setup in HORIZON_SETUPS
        self.connection = "redis" if setup == "redis" or self.horizon else "database"
        if self.horizon:
            # Horizon's `monitoring` set: the tags an operator watches.
            client.sadd(f"{self.horizon_prefix}monitoring", TAG)

    def options(self) -> str:
        lines = [f'redis_url = "{self.redis_url}"', f'redis_prefix = "{self.queue_prefix}"']
        if self.horizon:
            lines += ["horizon = true", f'horizon_prefix = "{self.horizon_prefix}"']
        if self.setup == "horizon-records":
            lines.append('horizon_source = "horizon"')
        if self.setup == "artisan":
            php = shutil.which("php") or "php"
            artisan = Path(self.url.removeprefix("sqlite:///")).parents[1] / "artisan"
            lines += ['executor = "artisan"', f'artisan = "{artisan}"', f'php = "{php}"']
        return "\n".join(lines) + "\n"

    def fail(
        self,
        queue: str,
        hours_ago: float,
        *,
        at: datetime | None = None,
        in_table: bool = True,
        rich: bool = False,
    ) -> str:
        """A job that failed ``hours_ago`` (or ``at``): the failer's row and, with Horizon,
        ``RedisJobRepository::failed`` and ``StoreTagsForFailedJob``."""
        job_uuid = str(uuid.uuid4())
        failed_at = at or (
            datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(hours=hours_ago)
        )
        failed_micro = failed_at.replace(tzinfo=UTC).timestamp() + 0.5
        created = int(failed_micro) - 120
        build: dict[str, Any] = {"max_tries": 3, "created_at": created}
        if rich:
            build |= {
                "timeout": 120,
                "backoff": "10,60",
                "retry_until": created + 600,
                "batch_id": "9a1b7c3e-0000-4000-8000-00000000ba7c",
                "properties": {"invoice": 7, "note": 'he said "hi" \\ bye'},
            }
        payload = build_payload(
            "App\\Jobs\\SendInvoice",
            uuid=job_uuid,
            redis=self.connection == "redis",
            horizon=self.horizon,
            tags=(TAG,),
            pushed_at=created,
            **build,
        )
        if self.connection == "redis":
            payload["attempts"] = 3  # the pop script counted each try
        if self.horizon:
            payload["id"] = job_uuid  # Horizon's RedisQueue uses the uuid as the Redis id
        text = php_json_encode(payload, unescaped_unicode=not self.horizon)
        exception = f"RuntimeException: SMTP timeout for {queue} in /app/Jobs/SendInvoice.php:42"
        if self.horizon:
            h = self.horizon_prefix
            score = -failed_micro
            pipe = self.client.pipeline()
            pipe.zadd(f"{h}recent_jobs", {job_uuid: -(created + 0.25)})  # when it was pushed
            pipe.zadd(f"{h}failed_jobs", {job_uuid: score})
            pipe.zadd(f"{h}recent_failed_jobs", {job_uuid: score})
            pipe.zadd(f"{h}failed:{TAG}", {job_uuid: score})
            pipe.hset(
                f"{h}{job_uuid}",
                mapping={
                    "id": job_uuid,
                    "connection": "redis",
                    "queue": queue,
                    "name": "App\\Jobs\\SendInvoice",
                    "status": "failed",
                    "payload": text,
                    "exception": exception,
                    "context": "[]",
                    "failed_at": f"{failed_micro:.14g}",
                },
            )
            pipe.expireat(f"{h}{job_uuid}", int(failed_micro) + TRIM_FAILED * 60)
            pipe.execute()
        if in_table:
            with self.engine.begin() as conn:
                insert_failed_jobs(
                    conn,
                    [
                        {
                            "uuid": job_uuid,
                            "connection": self.connection,
                            "queue": queue,
                            "payload": text,
                            "exception": exception,
                            "failed_at": failed_at,
                        }
                    ],
                )
        return job_uuid

    # -- the whole state -------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        failed_table, jobs_table = failed_jobs_table(), queue_jobs_table()
        with self.engine.connect() as conn:
            failed = conn.execute(sa.select(failed_table).order_by(failed_table.c.id)).mappings()
            rows = {
                str(r["uuid"]): {
                    "connection": r["connection"],
                    "queue": r["queue"],
                    "payload": _json(r["payload"]),
                    "exception": r["exception"],
                    "failed_at": r["failed_at"],
                }
                for r in failed
            }
            jobs = [
                {
                    "queue": r["queue"],
                    "payload": _json(r["payload"]),
                    "attempts": r["attempts"],
                    "reserved_at": r["reserved_at"],
                    "available_at": r["available_at"],
                    "created_at": r["created_at"],
                }
                for r in conn.execute(sa.select(jobs_table).order_by(jobs_table.c.id)).mappings()
            ]
        return {"failed_jobs": rows, "jobs": jobs, "redis": self.redis_state()}

    def redis_state(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        c = self.client
        for raw in c.scan_iter(match=f"{self.prefix}*", count=1000):
            key = raw.decode()
            kind = c.type(raw).decode()
            value: Any
            if kind == "list":
                value = [_json(v.decode()) for v in c.lrange(raw, 0, -1)]
            elif kind == "zset":
                # member → score: a sorted set's whole content (its order follows from it)
                value = {m.decode(): s for m, s in c.zrange(raw, 0, -1, withscores=True)}
            elif kind == "hash":
                value = {
                    k.decode(): _json(v.decode())
                    if k in (b"payload", b"retried_by")
                    else v.decode()
                    for k, v in c.hgetall(raw).items()
                }
            elif kind == "set":
                value = sorted(m.decode() for m in c.smembers(raw))
            else:
                value = c.get(raw)
            expires = c.expiretime(raw)
            found[key.removeprefix(self.prefix)] = (kind, value, None if expires < 0 else expires)
        return found

    def close(self) -> None:
        self.engine.dispose()


# -- what the artisan commands leave (the test's own model of Laravel and Horizon) -------------


class Expected:
    """The state before an action, turned by hand into the state Laravel would leave."""

    def __init__(self, app: LaravelApp, before: dict[str, Any], moment: Moment) -> None:
        self.app = app
        self.state = copy.deepcopy(before)
        self.now = moment

    @property
    def redis(self) -> dict[str, Any]:
        r: dict[str, Any] = self.state["redis"]
        return r

    def _zadd(self, name: str, member: str, score: Any) -> None:
        kind, members, expires = self.redis.get(name, ("zset", {}, None))
        self.redis[name] = (kind, {**members, member: score}, expires)

    def _rpush(self, name: str, item: Any) -> None:
        kind, items, expires = self.redis.get(name, ("list", [], None))
        self.redis[name] = (kind, [*items, item], expires)

    def push_raw(self, connection: str, queue: str, payload: Any) -> None:
        """``DatabaseQueue::pushRaw`` / ``RedisQueue::pushRaw`` onto the original queue."""
        if connection == "database":
            self.state["jobs"].append(
                {
                    "queue": queue,
                    "payload": payload,
                    "attempts": 0,
                    "reserved_at": None,
                    "available_at": self.now.seconds(),
                    "created_at": self.now.seconds(),
                }
            )
        else:
            key = f"laravel_database_queues:{queue}"
            self._rpush(key, payload)
            self._rpush(f"{key}:notify", 1)

    def queue_retry(self, job: str, *, php_ran_retry_until: bool = True) -> None:
        """``queue:retry <uuid>``: resetAttempts + refreshRetryUntil, pushRaw, forget."""
        row = self.state["failed_jobs"].pop(job)
        payload = dict(row["payload"])
        if payload.get("attempts") is not None:  # isset($payload['attempts'])
            payload["attempts"] = 0
        until = payload.get("retryUntil")
        if until is not None and php_ran_retry_until:
            # The job's retryUntil() as PHP would run it — a window from now. The native executor
            # cannot run PHP, so it keeps the job's window (retryUntil - createdAt): the same
            # value for a job whose retryUntil() is `now()->addSeconds(window)`.
            payload["retryUntil"] = self.now.seconds(until - payload["createdAt"])
        if self.app.horizon:
            raise AssertionError("Horizon applications are retried the way Horizon does")
        self.push_raw(row["connection"], row["queue"], ordered_payload(payload))

    def horizon_retry(self, job: str, new_id: str) -> None:
        """Horizon's retry (``RetryFailedJob``), its ``pushRaw`` (``JobPayload::prepare``),
        the ``JobPushed`` listeners and ``storeRetryReference``; then the failer's row goes as
        ``queue:retry`` would (see docs/laravel.md)."""
        h = "laravel_horizon:"
        kind, record, expires = self.redis[f"{h}{job}"]
        original = dict(record["payload"])
        window = original.get("retryUntil") or original.get("timeoutAt")
        merged = {
            **original,
            "id": new_id,
            "uuid": new_id,
            "attempts": 0,
            "retry_of": job,
            "retryUntil": self.now.seconds(math.ceil(window - float(original["pushedAt"])))
            if window
            else None,
        }
        merged |= {
            "type": "job",
            "tags": list(original.get("tags") or []),
            "pushedAt": self.now.microtime(),
        }
        payload = ordered_payload(merged)
        self.push_raw("redis", record["queue"], payload)
        # StoreJob → RedisJobRepository::pushed
        self._zadd(f"{h}recent_jobs", new_id, self.now.score())
        self._zadd(f"{h}pending_jobs", new_id, self.now.score())
        self.redis[f"{h}{new_id}"] = (
            "hash",
            {
                "id": new_id,
                "connection": record["connection"],
                "queue": record["queue"],
                "name": original["displayName"],
                "status": "pending",
                "payload": payload,
                "created_at": self.now.microtime(),
                "updated_at": self.now.microtime(),
            },
            self.now.seconds(PENDING_MINUTES * 60),
        )
        # StoreMonitoredTags → RedisTagRepository::add (score: +microtime)
        for tag in merged["tags"]:
            if tag in self.redis[f"{h}monitoring"][1]:
                self._zadd(f"{h}{tag}", new_id, self.now.score(sign=1))
        # storeRetryReference on the original
        retries = list(record.get("retried_by") or [])
        retries.append(
            ordered({"id": new_id, "status": "pending", "retried_at": self.now.seconds()})
        )
        self.redis[f"{h}{job}"] = (kind, {**record, "retried_by": retries}, expires)
        self.state["failed_jobs"].pop(job, None)

    def forget(self, job: str) -> None:
        """``queue:forget`` — or ``horizon:forget``: ``deleteFailed`` (ZREM failed_jobs, DEL the
        hash when it was there) then the failer's ``forget``."""
        if self.app.horizon:
            h = "laravel_horizon:"
            kind, members, expires = self.redis[f"{h}failed_jobs"]
            if job in members:
                left = {m: score for m, score in members.items() if m != job}
                if left:
                    self.redis[f"{h}failed_jobs"] = (kind, left, expires)
                else:
                    del self.redis[f"{h}failed_jobs"]
                self.redis.pop(f"{h}{job}", None)
        self.state["failed_jobs"].pop(job, None)

    def prune(self, hours: float) -> None:
        """``queue:prune-failed --hours=N``: the table only (Horizon trims its own records)."""
        limit = datetime.fromtimestamp(self.now.low, UTC).replace(tzinfo=None) - timedelta(
            hours=hours
        )
        for job, row in list(self.state["failed_jobs"].items()):
            if row["failed_at"] < limit:
                del self.state["failed_jobs"][job]


def assert_same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """``actual == expected``, failing with each differing row or key in full."""
    lines = []
    for part in ("failed_jobs", "redis"):
        for key in sorted(set(actual[part]) | set(expected[part])):
            if actual[part].get(key) != expected[part].get(key):
                lines.append(f"{part} {key}:\n  actual   {actual[part].get(key)!r}")
                lines.append(f"  expected {expected[part].get(key)!r}")
    if actual["jobs"] != expected["jobs"]:
        lines.append(f"jobs:\n  actual   {actual['jobs']!r}\n  expected {expected['jobs']!r}")
    assert not lines, "\n".join(lines)


def ordered_payload(payload: dict[str, Any]) -> Any:
    """A payload dict built from ordered pairs, back to ordered pairs."""
    return [(key, value) for key, value in payload.items()]


def _as_dict(pairs: Any) -> dict[str, Any]:
    return dict(pairs) if isinstance(pairs, list) else pairs


# -- the real path: API/CLI → spool → agent --------------------------------------------------


class Failboard:
    """failboard pointed at the application: config file, Board, API client, agents."""

    def __init__(self, app: LaravelApp, tmp_path: Path) -> None:
        self.app = app
        text = (
            f'[spool]\nurl = "sqlite:///{tmp_path}/spool.db"\nlease_seconds = 30\n'
            "[agent]\nbatch_size = 2\n"  # several batches even for these few jobs
            f'[[projects]]\nkey = "shop"\nname = "Shop"\ndriver = "laravel"\nurl = "{app.url}"\n'
            + app.options()
        )
        self.config = tmp_path / "failboard.toml"
        self.config.write_text(text)
        self.settings: Settings = parse_settings(text, source=self.config)
        self.board = Board(self.settings)
        self.board.spool.migrate()
        self.client = TestClient(create_app(self.settings, board=self.board, inline=False))
        self.client.__enter__()

    def post(self, **body: Any) -> Action:
        answer = self.client.post("/api/v1/actions", json={"project": "shop", **body})
        assert answer.status_code == 202, answer.text
        return self.board.action(answer.json()["id"])

    def cli(self, *argv: str) -> Action:
        out = CliRunner().invoke(cli_app, [*argv, "--json", "--config", str(self.config)])
        assert out.exit_code == 0, out.output
        return self.board.action(json.loads(out.stdout)["id"])

    def run_agent(self, *, process: bool = False) -> Moment:
        """One pass of a real agent; returns the clock window it ran in."""
        low = time.time()
        if process:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "failboard",
                    "agent",
                    "--project",
                    "shop",
                    "--once",
                    "--config",
                    str(self.config),
                ],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        else:
            project = self.settings.project("shop")
            agent = Agent(
                self.board.spool,
                "shop",
                lambda: registry.make_executor(project, self.settings.agent.batch_size),
                name="parity:1",
            )
            try:
                assert agent.run_once() >= 1
            finally:
                agent.close()
        return Moment(low, time.time())

    def done(self, action: Action) -> Action:
        finished = self.board.action(action.id)
        assert finished.status == "completed", finished
        return finished

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.board.close()


@pytest.fixture(params=CASES, ids=[f"{s}-{k}" for s, k in CASES])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LaravelApp, Failboard]]:
    setup, kind = request.param
    with fresh_prefix() as (client, redis_url, prefix):
        if setup == "artisan":
            _need_php()
            root = tmp_path / "app"
            (root / "database").mkdir(parents=True)
            shutil.copy(STANDIN, root / "artisan")
            app = LaravelApp(
                setup, f"sqlite:///{root}/database/database.sqlite", client, redis_url, prefix
            )
            yield from _run_world(app, tmp_path)
            return
        with fresh_database(kind) as url:
            app = LaravelApp(setup, url, client, redis_url, prefix)
            yield from _run_world(app, tmp_path)


def _run_world(app: LaravelApp, tmp_path: Path) -> Iterator[tuple[LaravelApp, Failboard]]:
    board = Failboard(app, tmp_path)
    try:
        yield app, board
    finally:
        board.close()
        app.close()


def _need_php() -> None:
    php = shutil.which("php")
    if (
        php is None
        or "pdo_sqlite"
        not in subprocess.run([php, "-m"], capture_output=True, text=True, check=False).stdout
    ):
        message = "php with pdo_sqlite is needed: apt-get install -y php-cli php-sqlite3"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def _new_ids(app: LaravelApp, originals: list[str]) -> dict[str, str]:
    """The uuid Horizon's retry gave each original (read from its ``retried_by``)."""
    found = {}
    for job in originals:
        raw = app.client.hget(f"{app.horizon_prefix}{job}", "retried_by")
        assert raw is not None, f"{job} was not retried the way Horizon does"
        (retry,) = json.loads(raw)
        assert uuid.UUID(retry["id"]) and retry["id"] != job
        found[job] = retry["id"]
    return found


def _retry(expected: Expected, app: LaravelApp, jobs: list[str]) -> None:
    if app.horizon:
        for job, new_id in _new_ids(app, jobs).items():
            expected.horizon_retry(job, new_id)
    else:
        for job in jobs:
            expected.queue_retry(job, php_ran_retry_until=app.setup != "artisan")


# -- the tests -------------------------------------------------------------------------------


def test_list_and_view(world: tuple[LaravelApp, Failboard]) -> None:
    app, fb = world
    rich = app.fail("emails", 2, rich=True)
    plain = app.fail("reports", 3)
    page = fb.board.list_jobs(JobQuery(projects=("shop",)))
    assert page.errors == ()
    assert [(j.id, j.uuid, j.queue, j.connection) for j in page.items] == [
        (rich, rich, "emails", app.connection),
        (plain, plain, "reports", app.connection),
    ]
    first = page.items[0]
    assert first.name == "App\\Jobs\\SendInvoice" and first.exception_class == "RuntimeException"
    assert first.exception_message == "SMTP timeout for emails"
    assert first.attempts == (3 if app.connection == "redis" else None)

    detail = fb.client.get(f"/api/v1/jobs/shop/{rich}").json()
    payload = detail["payload"]
    assert payload["uuid"] == rich and detail["max_tries"] == 3
    extra = detail["extra"]
    assert extra["displayName"] == "App\\Jobs\\SendInvoice"
    assert extra["commandName"] == "App\\Jobs\\SendInvoice"
    assert (extra["maxTries"], extra["timeout"], extra["backoff"]) == (3, 120, "10,60")
    assert extra["retryUntil"] == payload["createdAt"] + 600
    assert extra["batchId"] == "9a1b7c3e-0000-4000-8000-00000000ba7c"
    # The serialized PHP command as text: quotes and backslashes as PHP wrote them.
    assert extra["command"] == php_serialize_object(
        "App\\Jobs\\SendInvoice", {"invoice": 7, "note": 'he said "hi" \\ bye'}
    )
    assert extra["command"].startswith('O:20:"App\\Jobs\\SendInvoice":2:{')
    if app.horizon:
        assert extra["tags"] == [TAG] and extra["horizon_status"] == "failed"
    else:
        assert "tags" not in extra
    assert fb.client.get(f"/api/v1/jobs/shop/{uuid.uuid4()}").status_code == 404


def test_retry(world: tuple[LaravelApp, Failboard]) -> None:
    app, fb = world
    windowed = app.fail("emails", 2, rich=True)
    plain = app.fail("reports", 3)
    kept = app.fail("emails", 1)
    before = app.state()
    action = fb.post(action="retry", job_ids=[plain, windowed, "no-such-job"])
    moment = fb.run_agent()
    done = fb.done(action)
    assert (done.result.succeeded, done.result.missing, done.result.failed) == (2, 1, 0)  # type: ignore[union-attr]

    expected = Expected(app, before, moment)
    _retry(expected, app, [plain, windowed])  # in the order asked, as queue:retry <ids>
    assert_same(app.state(), expected.state)
    listed = [j.id for j in fb.board.list_jobs(JobQuery(projects=("shop",))).items]
    assert listed == [kept]


def test_delete(world: tuple[LaravelApp, Failboard]) -> None:
    app, fb = world
    gone = app.fail("emails", 2)
    kept = app.fail("emails", 1)
    jobs = [gone, "no-such-job"]
    if app.horizon:
        # Horizon still has it, the table not (its failer row was forgotten by hand).
        jobs.append(app.fail("emails", 3, in_table=False))
    before = app.state()
    action = fb.cli("delete", "shop", *jobs)
    moment = fb.run_agent()
    done = fb.done(action)
    assert (done.result.succeeded, done.result.missing) == (len(jobs) - 1, 1)  # type: ignore[union-attr]

    expected = Expected(app, before, moment)
    for job in jobs:
        expected.forget(job)
    assert_same(app.state(), expected.state)
    assert [j.id for j in fb.board.list_jobs(JobQuery(projects=("shop",))).items] == [kept]


def test_retry_one_queue_only_what_failed_before_the_click(
    world: tuple[LaravelApp, Failboard],
) -> None:
    app, fb = world
    emails = [app.fail("emails", hours) for hours in (3, 2, 1)]
    other = app.fail("reports", 2)
    action = fb.post(action="retry_queue", queue="emails")
    assert action.params["queue"] == "emails"
    # Fails after the operator clicked: queue:retry --queue=emails run now would take it too.
    late_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(seconds=3)
    late = app.fail("emails", 0, at=late_at)
    before = app.state()
    moment = fb.run_agent(process=True)  # `failboard agent --once`, a process of its own
    done = fb.done(action)
    assert (done.result.succeeded, done.result.missing, done.result.failed) == (3, 0, 0)  # type: ignore[union-attr]

    expected = Expected(app, before, moment)
    # DatabaseUuidFailedJobProvider::all() is ORDER BY id DESC: the newest row is pushed first.
    _retry(expected, app, emails[::-1])
    assert_same(app.state(), expected.state)
    listed = {j.id for j in fb.board.list_jobs(JobQuery(projects=("shop",))).items}
    assert listed == {late, other}


def test_prune(world: tuple[LaravelApp, Failboard]) -> None:
    app, fb = world
    old = [app.fail("emails", 48), app.fail("reports", 30)]
    young = [app.fail("emails", 23), app.fail("reports", 2)]
    before = app.state()
    action = fb.cli("prune", "shop", "--hours", "24")
    moment = fb.run_agent(process=app.setup in ("artisan", "horizon"))
    done = fb.done(action)
    assert (done.result.succeeded, done.result.failed) == (2, 0)  # type: ignore[union-attr]

    expected = Expected(app, before, moment)
    expected.prune(24)
    assert_same(app.state(), expected.state)
    assert not set(old) & set(expected.state["failed_jobs"])
    if app.setup == "horizon-records":
        # Horizon's own list is trimmed by Horizon (trim.failed), as after queue:prune-failed.
        listed = {j.id for j in fb.board.list_jobs(JobQuery(projects=("shop",))).items}
        assert listed == set(old) | set(young)
    else:
        listed = {j.id for j in fb.board.list_jobs(JobQuery(projects=("shop",))).items}
        assert listed == set(young)

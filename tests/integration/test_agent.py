"""The agent as a process and under trouble: SIGTERM, two agents, a poison action, lost leases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from failboard.agent import Agent
from failboard.config import parse_settings
from failboard.db import create_engine
from failboard.drivers import registry
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.models import ActionKind, ActionStatus
from failboard.spool import Spool
from tests.services import fresh_database


def _seed(url: str, count: int) -> list[str]:
    engine = create_engine(url)
    laravel_schema.create_tables(engine)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    rows = [
        {
            "uuid": job_id,
            "connection": "database",
            "queue": "default",
            "payload": laravel_payload.build_payload("App\\Jobs\\X", uuid=job_id),
            "exception": "RuntimeException: x",
            "failed_at": now - timedelta(seconds=i),
        }
        for i, job_id in enumerate(ids)
    ]
    with engine.begin() as connection:
        laravel_schema.insert_failed_jobs(connection, rows)
    engine.dispose()
    return ids


def _config(tmp_path: Path, url: str, extra: str = "") -> Path:
    file = tmp_path / "failboard.toml"
    file.write_text(
        f'[spool]\nurl = "{url}"\nlease_seconds = 10\n[agent]\ngrace_seconds = 5\n{extra}'
        f'[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "{url}"\n'
    )
    return file


def _start_agent(config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = config.parent / f"agent-{len(list(config.parent.glob('agent-*.log')))}.log"
    with log.open("wb") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "failboard",
                "agent",
                "--project",
                "shop",
                "--config",
                str(config),
                "--interval",
                "0.2",
                *args,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )


def test_sigterm_stops_the_agent_cleanly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/all.db"
    _seed(url, 1)
    config = _config(tmp_path, url)
    spool = Spool(url)
    spool.migrate()
    process = _start_agent(config)
    try:
        deadline = time.monotonic() + 20
        while "shop" not in spool.agents_last_seen() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "shop" in spool.agents_last_seen(), (tmp_path / "agent-0.log").read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        spool.close()


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_two_agents_for_one_project_push_each_job_exactly_once(tmp_path: Path, kind: str) -> None:
    with fresh_database(kind) as url:
        ids = _seed(url, 60)
        config = _config(tmp_path, url)
        spool = Spool(url)
        spool.migrate()
        actions = [spool.submit("shop", ActionKind.RETRY, {"job_ids": [i]}) for i in ids]
        # Every job named twice: a second action for the same job must find it gone (missing).
        actions += [spool.submit("shop", ActionKind.RETRY, {"job_ids": [i]}) for i in ids[:20]]
        agents = [_start_agent(config), _start_agent(config)]
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if all(spool.get(a.id).status.finished for a in actions[-5:]) and all(
                    spool.get(a.id).status.finished for a in actions
                ):
                    break
                time.sleep(0.3)
        finally:
            for process in agents:
                process.send_signal(signal.SIGTERM)
            codes = [process.wait(timeout=20) for process in agents]
        done = [spool.get(a.id) for a in actions]
        spool.close()
        assert codes == [0, 0]
        assert {a.status for a in done} == {ActionStatus.COMPLETED}
        assert sum(a.result.succeeded for a in done if a.result) == 60
        assert sum(a.result.missing for a in done if a.result) == 20
        assert {a.claimed_by for a in done} and len({a.claimed_by for a in done}) <= 2
        engine = create_engine(url)
        with engine.connect() as connection:
            payloads = connection.execute(sa.text("SELECT payload FROM jobs")).scalars().all()
        engine.dispose()
        pushed = [json.loads(p)["uuid"] for p in payloads]
        assert sorted(pushed) == sorted(ids), "each job pushed exactly once"


def test_a_poison_action_ends_failed_after_the_attempt_limit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/spool.db"
    settings = parse_settings(
        f'[spool]\nurl = "{url}"\n[[projects]]\nkey = "shop"\ndriver = "laravel"\n'
        'url = "postgresql+psycopg://nobody:x@127.0.0.1:1/none"\n',
        environ={},
    )
    spool = Spool(url, max_attempts=2, retry_delay_seconds=0)
    spool.migrate()
    action = spool.submit("shop", ActionKind.DELETE, {"job_ids": ["1"]})
    project = settings.project("shop")
    agent = Agent(spool, "shop", lambda: registry.make_executor(project), name="t")
    for _ in range(4):
        agent.run_once()
    agent.close()
    final = spool.get(action.id)
    spool.close()
    assert final.status == ActionStatus.FAILED
    assert final.attempts == 2
    assert final.error and "cannot connect" in final.error


def test_an_agent_that_lost_its_lease_does_not_record_an_outcome(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/all.db"
    ids = _seed(url, 3)
    spool = Spool(url, lease_seconds=1)
    spool.migrate()
    action = spool.submit("shop", ActionKind.RETRY, {"job_ids": ids})
    (stale,) = spool.claim("shop", "slow-agent", 1)
    time.sleep(1.5)
    assert spool.reap("shop") == 1
    settings = parse_settings(_config(tmp_path, url).read_text(), environ={})
    project = settings.project("shop")
    fresh = Agent(spool, "shop", lambda: registry.make_executor(project), name="fresh")
    assert fresh.run_once() == 1
    fresh.close()
    slow = Agent(spool, "shop", lambda: registry.make_executor(project), name="slow-agent")
    slow.run_action(stale)  # its claim token was fenced out: it must not overwrite the outcome
    slow.close()
    final = spool.get(action.id)
    spool.close()
    assert final.status == ActionStatus.COMPLETED and final.claimed_by == "fresh"
    assert final.result is not None and final.result.succeeded == 3

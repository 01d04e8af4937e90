"""A pass of small retry/delete actions run as grouped executor calls (Laravel, real stores):
each action's result is what it would have been alone, in claim order."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from failboard import agent_pass
from failboard.agent import Agent
from failboard.config import ProjectSettings
from failboard.db import create_engine
from failboard.drivers import registry
from failboard.drivers.base import Executor, JobOutcome
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.models import ActionKind, ActionStatus
from failboard.spool import Spool
from tests.services import fresh_database


@pytest.fixture(params=["postgres", "mysql", "sqlite"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    with fresh_database(request.param) as fresh:
        yield fresh


def _seed(url: str, connections: list[str]) -> list[str]:
    engine = create_engine(url)
    laravel_schema.create_tables(engine)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    ids = [str(uuid.uuid4()) for _ in connections]
    rows = [
        {
            "uuid": job_id,
            "connection": connection,
            "queue": "default",
            "payload": laravel_payload.build_payload("App\\Jobs\\X", uuid=job_id),
            "exception": "RuntimeException: x",
            "failed_at": now - timedelta(seconds=i),
        }
        for i, (job_id, connection) in enumerate(zip(ids, connections, strict=True))
    ]
    with engine.begin() as connection:
        laravel_schema.insert_failed_jobs(connection, rows)
    engine.dispose()
    return ids


def _pushed(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            payloads = connection.execute(sa.text("SELECT payload FROM jobs")).scalars().all()
    finally:
        engine.dispose()
    return [json.loads(payload)["uuid"] for payload in payloads]


class _Counting:
    """The real executor, counting its grouped and lone calls (and failing the first grouped
    call when told to)."""

    def __init__(self, inner: Any, *, fail_grouped: bool = False) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.fail_grouped = fail_grouped

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name in {"retry", "delete"}:

            def lone(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attribute(*args, **kwargs)

            return lone
        return attribute

    def retry_each(self, job_ids: list[str]) -> dict[str, JobOutcome]:
        self.calls.append("retry_each")
        if self.fail_grouped:
            self.fail_grouped = False
            raise RuntimeError("grouped call broke before doing anything")
        answers: dict[str, JobOutcome] = self.inner.retry_each(job_ids)
        return answers

    def delete_each(self, job_ids: list[str]) -> dict[str, JobOutcome]:
        self.calls.append("delete_each")
        answers: dict[str, JobOutcome] = self.inner.delete_each(job_ids)
        return answers


def _run(url: str, submitted: list[tuple[ActionKind, list[str]]], executor: _Counting) -> list[Any]:
    spool = Spool(url)
    spool.migrate()
    try:
        ids = [spool.submit("shop", kind, {"job_ids": jobs}).id for kind, jobs in submitted]

        def factory() -> Executor:
            return executor  # type: ignore[return-value]

        agent = Agent(spool, "shop", factory, name="test:1", limit=50)
        assert agent.run_once() == len(submitted)
        agent.close()
        return [spool.get(action_id) for action_id in ids]
    finally:
        spool.close()


def _counts(action: Any) -> tuple[int, int, int]:
    return (action.result.succeeded, action.result.missing, action.result.failed)


def test_a_pass_of_small_actions_runs_grouped_with_each_result_as_alone(url: str) -> None:
    a, b, c, d, bad = _seed(url, ["database"] * 4 + ["nowhere"])
    project = ProjectSettings.model_validate({"key": "shop", "driver": "laravel", "url": url})
    executor = _Counting(registry.make_executor(project))
    actions = _run(
        url,
        [
            (ActionKind.RETRY, [a]),
            (ActionKind.RETRY, [a, b]),  # a again: done by the first action, missing here
            (ActionKind.RETRY, [bad]),  # fails its own action only
            (ActionKind.DELETE, [c, "nope"]),
            (ActionKind.DELETE, [c]),
            (ActionKind.RETRY, [d, bad]),
        ],
        executor,
    )
    # Consecutive actions of one kind are one call each; a lone one runs as always.
    assert executor.calls == ["retry_each", "delete_each", "retry"]
    assert [_counts(action) for action in actions] == [
        (1, 0, 0),
        (1, 1, 0),
        (0, 0, 1),
        (1, 1, 0),
        (0, 1, 0),
        (1, 0, 1),
    ]
    assert [action.status for action in actions] == [
        ActionStatus.COMPLETED,
        ActionStatus.COMPLETED,
        ActionStatus.FAILED,
        ActionStatus.COMPLETED,
        ActionStatus.COMPLETED,
        ActionStatus.FAILED,
    ]
    assert actions[2].result.errors[0].startswith(f"{bad}: connection 'nowhere'")
    assert sorted(_pushed(url)) == sorted([a, b, d])  # each pushed exactly once


def test_a_grouped_call_that_raises_runs_each_action_alone(url: str) -> None:
    a, b = _seed(url, ["database", "database"])
    project = ProjectSettings.model_validate({"key": "shop", "driver": "laravel", "url": url})
    executor = _Counting(registry.make_executor(project), fail_grouped=True)
    actions = _run(url, [(ActionKind.RETRY, [a]), (ActionKind.RETRY, [b, a])], executor)
    assert executor.calls == ["retry_each", "retry", "retry"]
    assert [_counts(action) for action in actions] == [(1, 0, 0), (1, 1, 0)]
    assert sorted(_pushed(url)) == sorted([a, b])


def test_a_burst_of_small_actions_is_claimed_in_growing_batches(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every full pass counts as quick here (and none as slow), whatever the machine's load: the
    # rule itself, the slow pass that shrinks it included, is tested in test_agent_pass.py.
    monkeypatch.setattr(agent_pass, "QUICK_PASS", 3_600.0)
    monkeypatch.setattr(agent_pass, "SLOW_PASS", 7_200.0)
    jobs = _seed(url, ["database"] * 400)
    spool = Spool(url)
    spool.migrate()
    claims: list[int] = []
    claim = spool.claim

    def counted(project: str, agent: str, limit: int = 10) -> list[Any]:
        claims.append(limit)
        return claim(project, agent, limit)

    spool.claim = counted  # type: ignore[method-assign]
    project = ProjectSettings.model_validate({"key": "shop", "driver": "laravel", "url": url})
    agent = Agent(spool, "shop", lambda: registry.make_executor(project), name="test:1")
    try:
        ids = [spool.submit("shop", ActionKind.RETRY, {"job_ids": [job]}).id for job in jobs]
        runner = threading.Thread(target=agent.run, kwargs={"interval": 0.05})
        runner.start()
        deadline = time.monotonic() + 60
        waiting = {ActionStatus.PENDING, ActionStatus.PROCESSING}
        while spool.get(ids[-1]).status in waiting and time.monotonic() < deadline:
            time.sleep(0.05)
        agent.stop()
        runner.join(30)
        assert not runner.is_alive()
        assert {spool.get(i).status for i in ids} == {ActionStatus.COMPLETED}
    finally:
        agent.close()
        spool.close()
    # 10, 20, 40, 80, then the default limit (100) until the 400 are claimed.
    assert claims[:6] == [10, 20, 40, 80, 100, 100]
    assert sorted(_pushed(url)) == sorted(jobs)  # each pushed exactly once

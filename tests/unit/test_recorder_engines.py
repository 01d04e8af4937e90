"""The Huey, arq and taskiq recorders in-process, without workers: which attempts are final (and
so recorded), what a row holds, and that a broken table never reaches the task's caller."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from failboard.config import ProjectSettings
from failboard.drivers import registry
from failboard.failures import Recorder
from failboard.models import JobQuery


def _rows(url: str, driver: str) -> list[Any]:
    project = ProjectSettings.model_validate({"key": "p", "driver": driver, "url": url})
    reader = registry.make_reader(project)
    try:
        return [reader.get(job.id) for job in reader.list(JobQuery(limit=50))]
    finally:
        reader.close()


@pytest.fixture
def closing() -> Iterator[list[Recorder]]:
    recorders: list[Recorder] = []
    yield recorders
    for recorder in recorders:
        recorder.close()


def test_huey_records_only_the_final_attempt(sqlite_url: str, closing: list[Recorder]) -> None:
    huey = pytest.importorskip("huey")
    import failboard.integrations.huey as integration

    app = huey.MemoryHuey("unit", immediate=True)
    recorder = integration.install(app, url=sqlite_url, project="p")
    closing.append(recorder)
    assert integration.install(app, url=sqlite_url, project="p") is recorder
    runs: list[int] = []

    @app.task(retries=2)
    def pay(iban: str, amount: int) -> None:
        runs.append(amount)
        raise ValueError(f"bank said no to {amount}")

    @app.task()
    def fine() -> str:
        return "ok"

    pay("DE89", 12)
    fine()
    assert runs == [12, 12, 12]
    [row] = _rows(sqlite_url, "huey")
    assert row.name.endswith(".pay") and row.queue == "unit" and row.attempts == 3
    assert row.exception_class == "ValueError" and row.args == ["DE89", 12]
    assert "ValueError: bank said no to 12" in row.exception


def test_arq_wrapper_records_exceptions_the_last_retry_and_timeouts_only(
    sqlite_url: str, closing: list[Recorder]
) -> None:
    arq = pytest.importorskip("arq")
    from arq.worker import func

    import failboard.integrations.arq as integration

    async def flaky(ctx: dict[str, Any], n: int) -> None:
        raise arq.Retry(defer=1) from KeyError(n)

    async def broken(ctx: dict[str, Any], password: str) -> None:
        raise RuntimeError("down")

    async def stuck(ctx: dict[str, Any]) -> None:
        await asyncio.sleep(10)

    class Settings:
        functions = (
            func(flaky, name="flaky"),
            func(broken, name="broken"),
            func(stuck, name="stuck", timeout=0.2),
        )
        max_tries = 3

    recorder = integration.install(Settings, url=sqlite_url, project="p")
    closing.append(recorder)
    assert integration.install(Settings, url=sqlite_url, project="p") is recorder
    wrapped = {f.name: f.coroutine for f in Settings.functions}

    async def run(name: str, job_id: str, job_try: int, *args: Any, wait: float = 5) -> None:
        ctx = {"job_id": job_id, "job_try": job_try}
        with pytest.raises((arq.Retry, RuntimeError, TimeoutError, asyncio.CancelledError)):
            await asyncio.wait_for(wrapped[name](ctx, *args), wait)

    async def main() -> None:
        await run("flaky", "a", 1, 1)  # tries left: arq runs it again
        await run("flaky", "b", 3, 2)  # the last try
        await run("broken", "c", 1, "hunter2")
        await run("stuck", "d", 1, wait=0.21)  # arq's wait_for at the job's timeout
        await run("stuck", "e", 1, wait=0.05)  # cancelled early: a worker stopping

    asyncio.run(main())
    rows = {row.id: row for row in _rows(sqlite_url, "arq")}
    assert set(rows) == {"b", "c", "d"}
    assert rows["b"].exception_class == "KeyError" and rows["b"].attempts == 3
    assert "no try left: 3 tries" in (rows["b"].exception_message or "")
    assert rows["c"].args == ["[redacted]"] and rows["c"].queue == "arq:queue"
    assert rows["d"].exception_class == "TimeoutError" and "in stuck" in rows["d"].exception


@pytest.mark.parametrize("recorder_first", [True, False])
def test_taskiq_records_when_the_retry_middleware_gives_up(
    sqlite_url: str, closing: list[Recorder], recorder_first: bool
) -> None:
    taskiq = pytest.importorskip("taskiq")
    from failboard.integrations.taskiq import FailboardMiddleware

    middleware = FailboardMiddleware(url=sqlite_url, project="p")
    closing.append(middleware.recorder)
    retries = taskiq.SimpleRetryMiddleware(default_retry_count=3)
    # First in the list, its on_error runs after the retry middleware's (which has then
    # raised the message's _retries label already); last, before it.
    order = (middleware, retries) if recorder_first else (retries, middleware)
    broker = taskiq.InMemoryBroker().with_middlewares(*order)
    runs: list[str] = []

    @broker.task(retry_on_error=True, task_name="proj:flaky")
    async def flaky(n: int) -> None:
        runs.append("flaky")
        raise LookupError(n)

    @broker.task(task_name="proj:once")
    async def once() -> None:
        runs.append("once")
        raise OSError("disk")

    async def main() -> None:
        await broker.startup()
        await flaky.kiq(5)
        await once.kiq()
        await broker.wait_all()
        await broker.shutdown()

    asyncio.run(main())
    assert runs.count("flaky") == 3 and runs.count("once") == 1
    found = _rows(sqlite_url, "taskiq")
    rows = {row.name: row for row in found}
    assert len(found) == 2 and set(rows) == {"proj:flaky", "proj:once"}
    assert rows["proj:flaky"].attempts == 3 and rows["proj:flaky"].args == [5]
    assert rows["proj:once"].attempts == 1 and rows["proj:once"].exception_class == "OSError"


def test_an_unreachable_table_never_reaches_the_job(closing: list[Recorder]) -> None:
    pytest.importorskip("arq")
    pytest.importorskip("psycopg")
    from arq.worker import func

    import failboard.integrations.arq as integration

    async def broken(ctx: dict[str, Any]) -> None:
        raise RuntimeError("the job's own error")

    class Settings:
        functions = (func(broken, name="broken"),)

    # Nothing listens on port 1: the write fails, the failure waits in the buffer.
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    recorder = integration.install(Settings, url=url, project="p", timeout=0.5)
    closing.append(recorder)
    ctx = {"job_id": "x", "job_try": 1}
    with pytest.raises(RuntimeError, match="the job's own error"):
        asyncio.run(Settings.functions[0].coroutine(ctx))
    assert recorder.stats.buffered == 1 and recorder.stats.write_errors == 1


def test_every_engine_passes_durable_to_its_recorder(
    sqlite_url: str, closing: list[Recorder]
) -> None:
    huey = pytest.importorskip("huey")
    import failboard.integrations.arq as arq_integration
    import failboard.integrations.dramatiq as dramatiq_integration
    import failboard.integrations.huey as huey_integration
    import failboard.integrations.taskiq as taskiq_integration

    made = [
        huey_integration.install(
            huey.MemoryHuey("durable", immediate=True), url=sqlite_url, project="p", durable=True
        ),
        arq_integration.install({"functions": []}, url=sqlite_url, project="p", durable=True),
        taskiq_integration.FailboardMiddleware(sqlite_url, "p", durable=True).recorder,
    ]
    middleware = dramatiq_integration.FailboardMiddleware(sqlite_url, "p", durable=True)
    assert middleware.recorder is not None
    made.append(middleware.recorder)
    closing.extend(made)
    assert all(recorder.durable for recorder in made)
    default = taskiq_integration.FailboardMiddleware(sqlite_url, "p").recorder
    closing.append(default)
    assert not default.durable

"""The Celery recorder in-process (eager tasks fire the same task_failure), the failures table
on SQLite, PostgreSQL and MariaDB, and the driver's reader and executor beyond the contract."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import failboard.integrations.celery as celery_integration
from failboard.config import ProjectSettings
from failboard.db import create_engine
from failboard.drivers import registry
from failboard.exceptions import ConfigError, StoreError
from failboard.failures import DEFAULT_REDACT, Failure, Recorder, failures_table
from failboard.models import JobQuery
from tests.celery_support import celery_app, queued_messages
from tests.rq_jobs import fresh_prefix
from tests.services import fresh_database

pytest.importorskip("celery")

ROOT = Path(__file__).resolve().parents[2]


def _project(url: str, **options: Any) -> ProjectSettings:
    return ProjectSettings.model_validate(
        {"key": "billing", "driver": "celery", "url": url, **options}
    )


def _eager_app() -> Any:
    from celery import Celery

    app = Celery("eager", broker="memory://", set_as_current=False)
    app.conf.update(
        task_always_eager=True, task_eager_propagates=False, task_store_eager_result=False
    )
    return app


def test_install_records_only_the_final_failure_with_args_redacted(db_url: str) -> None:
    app = _eager_app()
    recorder = celery_integration.install(
        app, url=db_url, project="billing", redact=(*DEFAULT_REDACT, "iban")
    )
    assert celery_integration.install(app, url=db_url, project="billing") is recorder
    calls: list[int] = []

    @app.task(bind=True, max_retries=2, default_retry_delay=0, name="proj.pay")
    def pay(self: Any, iban: str, amount: int, api_token: str = "") -> None:
        calls.append(self.request.retries)
        raise self.retry(exc=ValueError(f"bank said no to {amount}"))

    @app.task(name="proj.fine")
    def fine() -> str:
        return "ok"

    try:
        pay.apply(args=("DE89 3704", 12), kwargs={"api_token": "s3cret"})
        fine.apply()
        assert calls == [0, 1, 2]
        reader = registry.make_reader(_project(db_url))
        try:
            jobs = reader.list(JobQuery())
            assert len(jobs) == 1  # two retries and a success are not failures
            job = jobs[0]
            assert job.name == "proj.pay" and job.attempts == 3
            assert job.exception_class == "ValueError"
            assert job.exception_message == "bank said no to 12"
            detail = reader.get(job.id)
            assert detail is not None
            assert detail.args == ["[redacted]", 12]
            assert detail.payload["kwargs"] == {"api_token": "[redacted]"}
            assert detail.extra["redacted"] == ["args[0]", "kwargs.api_token"]
            assert detail.exception and "ValueError: bank said no to 12" in detail.exception
            assert "s3cret" not in json.dumps(detail.model_dump(mode="json"))
        finally:
            reader.close()
    finally:
        recorder.close()


def _seed(url: str, rows: list[Failure], project: str = "billing") -> None:
    recorder = Recorder(url, project)
    try:
        for row in rows:
            assert recorder.record(row)
    finally:
        recorder.close()


def _failure(job_id: str, **fields: Any) -> Failure:
    values: dict[str, Any] = {
        "engine": "celery",
        "job_id": job_id,
        "name": "proj.tasks.charge",
        "queue": "payments",
        "args": ["4242"],
        "kwargs": {"customer": "ACME-77"},
        "exception_class": "proj.CardDeclined",
        "exception_message": "card declined",
        "traceback": "Traceback (most recent call last):\nproj.CardDeclined: card declined\n",
        **fields,
    }
    return Failure(**values)


def test_filters_and_a_job_that_failed_twice(db_url: str) -> None:
    now = datetime.now(UTC)
    _seed(
        db_url,
        [
            _failure("a", failed_at=now - timedelta(minutes=5)),
            _failure("b", name="proj.tasks.mail", queue="emails", exception_class="SMTPError"),
            _failure("a", exception_message="card declined again", failed_at=now),
            # Another project in the same table: never shown, never touched.
            _failure("z"),
        ],
    )
    _seed(db_url, [_failure("z")], project="other")
    reader = registry.make_reader(_project(db_url))
    try:
        assert [j.id for j in reader.list(JobQuery(name="proj.tasks.mail"))] == ["b"]
        assert [j.id for j in reader.list(JobQuery(exception="smtp"))] == ["b"]
        assert {j.id for j in reader.list(JobQuery(q="acme-77"))} == {"a", "b", "z"}
        assert reader.list(JobQuery(connection="redis")) == []
        assert reader.queues() == ["emails", "payments"]
        detail = reader.get("a")
        assert detail is not None and detail.exception_message == "card declined again"
        assert reader.count(JobQuery()).value == 4
        executor = registry.make_executor(_project(db_url))
        try:
            result = executor.delete(["a"])
        finally:
            executor.close()
        assert (result.succeeded, result.missing) == (1, 0)
        assert reader.get("a") is None  # both rows of the job went
    finally:
        reader.close()
    engine = create_engine(db_url)
    with engine.connect() as connection:
        table = failures_table()
        owners = connection.execute(sa.select(table.c.project, table.c.job_id)).all()
    engine.dispose()
    assert sorted(owners) == [("billing", "b"), ("billing", "z"), ("other", "z")]


def test_retry_through_the_app_option_and_refusals(sqlite_url: str, monkeypatch: Any) -> None:
    monkeypatch.delenv("FB_CELERY_FAILURES", raising=False)
    monkeypatch.setenv("FB_CELERY_BROKER", "memory://")
    _seed(
        sqlite_url,
        [_failure("a"), _failure("h", engine="huey"), _failure("r", args=[object()])],
    )
    executor = registry.make_executor(_project(sqlite_url, app="tests.celery_tasks:app"))
    try:
        result = executor.retry(["a", "h", "r", "gone"])
        assert (result.succeeded, result.missing, result.failed) == (1, 1, 2)
        assert "recorded by huey" in result.errors[0]
        assert "not JSON" in result.errors[1]
        assert set(result.details["lineage"]) == {"a"}
    finally:
        executor.close()
    without_app = registry.make_executor(_project(sqlite_url))
    try:
        with pytest.raises(ConfigError, match="set app ="):
            without_app.retry(["h"])
        assert without_app.prune(datetime.now(UTC) + timedelta(hours=1)).succeeded == 2
    finally:
        without_app.close()


def test_migrate_failures_is_idempotent_and_makes_the_indexes(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "failboard.toml"
    config.write_text(
        f'[spool]\nurl = "{db_url}"\n'
        f'[[projects]]\nkey = "billing"\ndriver = "celery"\nurl = "{db_url}"\n'
        f'[[projects]]\nkey = "mailer"\ndriver = "celery"\nurl = "{db_url}"\n'
    )
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "failboard", "migrate", "--failures", "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("failures table failboard_failures ready") == 1
    engine = create_engine(db_url)
    with engine.connect() as connection:
        names = {
            index["name"] for index in sa.inspect(connection).get_indexes("failboard_failures")
        }
    engine.dispose()
    assert {
        "failboard_failures_project_failed_at",
        "failboard_failures_project_queue_failed_at",
        "failboard_failures_project_fingerprint_failed_at",
        "failboard_failures_project_job_id",
    } <= names


def test_a_missing_table_says_how_to_make_it(sqlite_url: str) -> None:
    reader = registry.make_reader(_project(sqlite_url))
    try:
        with pytest.raises(StoreError, match="migrate --failures"):
            reader.list(JobQuery())
    finally:
        reader.close()


def test_keep_task_id_re_sends_under_the_original_id(sqlite_url: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("FB_CELERY_BROKER", "memory://")
    _seed(sqlite_url, [_failure("a")])
    project = _project(sqlite_url, app="tests.celery_tasks:app", keep_task_id=True)
    executor = registry.make_executor(project)
    try:
        result = executor.retry(["a"])
    finally:
        executor.close()
    assert result.succeeded == 1 and result.details["lineage"] == {"a": "a"}


def test_an_unreachable_broker_stops_the_action_and_keeps_the_rows(sqlite_url: str) -> None:
    from failboard.drivers.celery import CeleryResender
    from failboard.failures import BrokerUnreachable, FailuresExecutor
    from tests.celery_support import celery_app

    _seed(sqlite_url, [_failure("a"), _failure("b")])
    app = celery_app("redis://127.0.0.1:1/0")  # nothing listens there
    executor = FailuresExecutor(
        "billing", sqlite_url, resender=lambda: CeleryResender("billing", app)
    )
    reader = registry.make_reader(_project(sqlite_url))
    try:
        with pytest.raises(BrokerUnreachable, match="broker"):
            executor.retry(["a", "b"])
        assert {job.id for job in reader.list(JobQuery())} == {"a", "b"}
    finally:
        reader.close()
        executor.close()
        app.close()


def test_the_dashboard_shows_a_celery_failure_escaped(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from failboard.config import parse_settings
    from failboard.web import create_app

    url = f"sqlite:///{tmp_path}/failures.db"
    _seed(url, [_failure("t-1", args=["<script>alert(1)</script>", 12])])
    settings = parse_settings(
        f'[spool]\nurl = "sqlite:///{tmp_path}/spool.db"\n'
        f'[[projects]]\nkey = "billing"\ndriver = "celery"\nurl = "{url}"\n',
        source=tmp_path / "failboard.toml",
    )
    app = create_app(settings, inline=False)
    app.state.board.spool.migrate()
    with TestClient(app) as client:
        listed = client.get("/api/v1/jobs").json()
        assert [job["id"] for job in listed["items"]] == ["t-1"] and not listed["errors"]
        detail = client.get("/api/v1/jobs/billing/t-1").json()
        assert detail["args"] == ["<script>alert(1)</script>", 12]
        page = client.get("/jobs/billing/t-1")
        assert page.status_code == 200
        assert "proj.tasks.charge" in page.text and "<script>alert(1)" not in page.text
        assert client.get("/").status_code == 200


def test_postgres_writes_commit_without_waiting_for_the_disk_unless_durable() -> None:
    with fresh_database("postgres") as url:
        for durable, expected in ((False, "off"), (True, "on")):
            recorder = Recorder(url, "billing", durable=durable)
            try:
                assert recorder.record(_failure(f"d-{durable}"))
                engine = recorder._engine_now()
                with engine.connect() as connection:
                    setting = connection.exec_driver_sql("SHOW synchronous_commit").scalar()
                assert setting == expected
            finally:
                recorder.close()
        # Only the recorder's own connections: another session of the database is untouched.
        engine = create_engine(url)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
            assert connection.execute(sa.select(sa.func.count()).select_from(failures_table()))
        engine.dispose()


def test_a_dead_connection_is_replaced_at_once_not_buffered() -> None:
    """No pre-ping: the write that finds its connection dead writes again on a new one, so the
    failure is in the table at once, with no write error and no back-off."""
    with fresh_database("postgres") as url:
        recorder = Recorder(url, "billing")
        admin = create_engine(url)
        try:
            assert recorder.record(_failure("before"))
            with recorder._engine_now().connect() as connection:
                pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with admin.connect() as connection:
                assert connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar()
            assert recorder.record(_failure("after"))
            assert (recorder.stats.recorded, recorder.stats.write_errors) == (2, 0)
            with admin.connect() as connection:
                ids = connection.execute(sa.select(failures_table().c.job_id)).scalars().all()
            assert sorted(ids) == ["after", "before"]
        finally:
            recorder.close()
            admin.dispose()


def test_sqlite_durable_syncs_fully() -> None:
    with fresh_database("sqlite") as url:
        for durable, expected in ((False, 1), (True, 2)):  # NORMAL, FULL
            recorder = Recorder(url, "billing", durable=durable)
            try:
                assert recorder.record(_failure("s"))
                with recorder._engine_now().connect() as connection:
                    assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == expected
            finally:
                recorder.close()


def test_redis_retry_sends_each_task_once_in_pipelined_batches() -> None:
    """1,200 tasks in batches of 500 on the real Redis broker: nothing reaches the queue before
    a batch's flush, every task arrives once with its arguments, queue and lineage header."""
    from failboard.drivers.celery import CeleryResender
    from failboard.failures import FailuresExecutor, StoredFailure

    with fresh_database("postgres") as url, fresh_prefix() as (client, broker, prefix):
        app = celery_app(broker, prefix)
        try:
            ids = [f"t-{i}" for i in range(1_200)]
            _seed(url, [_failure(job, args=[job, {"n": i}]) for i, job in enumerate(ids)])
            resender = CeleryResender("billing", app)
            resender.send(
                StoredFailure(1, "celery", "probe", "proj.tasks.charge", "payments", "[]", "{}",
                              {}, 1)
            )  # fmt: skip
            assert queued_messages(client, prefix, "payments") == []  # buffered, not sent
            resender.flush()
            assert len(queued_messages(client, prefix, "payments")) == 1
            client.delete(f"{prefix}payments")
            resender.close()

            executor = FailuresExecutor(
                "billing",
                url,
                resender=lambda: CeleryResender("billing", app),
                batch_size=500,
            )
            try:
                result = executor.retry(ids)
            finally:
                executor.close()
            assert (result.succeeded, result.failed, result.missing) == (1_200, 0, 0)
            messages = queued_messages(client, prefix, "payments")
            origins = [m["headers"]["failboard_retry_of"] for m in messages]
            assert sorted(origins) == sorted(ids)  # each once
            assert len({m["headers"]["id"] for m in messages}) == 1_200
            body = json.loads(base64.b64decode(messages[0]["body"]))  # [args, kwargs, embed]
            origin = messages[0]["headers"]["failboard_retry_of"]
            assert body[0] == [origin, {"n": ids.index(origin)}]
            assert body[1] == {"customer": "ACME-77"}
            assert messages[0]["properties"]["delivery_info"]["routing_key"] == "payments"
            reader = registry.make_reader(_project(url))
            try:
                assert len(reader.list(JobQuery())) == 0  # every row went, after its flush
            finally:
                reader.close()
        finally:
            app.close()

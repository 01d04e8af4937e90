"""``executor = "artisan"`` with a real ``php`` (Debian's php-cli) running tests/php/artisan, a
stand-in for a Laravel application's artisan (Laravel cannot be installed here) that does what
Laravel's commands do to a SQLite ``failed_jobs`` table and prints what they print."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from failboard.db import create_engine
from failboard.drivers.laravel import ArtisanExecutor, Options
from failboard.drivers.laravel.artisan import CommandResult
from failboard.drivers.laravel.payload import build_payload, php_json_encode
from failboard.drivers.laravel.schema import create_tables, insert_failed_jobs
from failboard.models import ActionResult
from tests.services import IN_CI

STANDIN = Path(__file__).resolve().parents[1] / "php" / "artisan"


def _php() -> str:
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
    return php


class App:
    """A directory laid out like a Laravel application: artisan + database/database.sqlite."""

    def __init__(self, root: Path) -> None:
        self.php = _php()
        (root / "database").mkdir()
        self.artisan = root / "artisan"
        shutil.copy(STANDIN, self.artisan)
        self.url = f"sqlite:///{root}/database/database.sqlite"
        self.engine = create_engine(self.url)
        create_tables(self.engine)
        self.log = root / "argv.log"

    def add(self, queue: str = "default", *, hours_ago: float = 1.0) -> str:
        job_uuid = str(uuid.uuid4())
        payload = build_payload("App\\Jobs\\Sync", uuid=job_uuid, redis=True, attempts=3)
        at = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(hours=hours_ago)
        with self.engine.begin() as conn:
            insert_failed_jobs(
                conn,
                [
                    {
                        "uuid": job_uuid,
                        "connection": "database",
                        "queue": queue,
                        "payload": php_json_encode(payload),
                        "exception": "RuntimeException: boom",
                        "failed_at": at,
                    }
                ],
            )
        return job_uuid

    def failed(self) -> set[str]:
        with self.engine.connect() as conn:
            return {str(u) for u in conn.execute(sa.text("SELECT uuid FROM failed_jobs")).scalars()}

    def jobs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM jobs ORDER BY id")).mappings().all()
        return [dict(row) for row in rows]

    def commands(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def executor(self, batch_size: int = 1_000, **options: Any) -> ArtisanExecutor:
        settings = {"executor": "artisan", "artisan": str(self.artisan), "php": self.php}
        return ArtisanExecutor(
            "shop", self.url, Options(**{**settings, **options}), batch_size=batch_size
        )


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    a = App(tmp_path)
    monkeypatch.setenv("STANDIN_LOG", str(a.log))
    yield a
    a.engine.dispose()


def _run(app: App, action: str, *args: Any, **options: Any) -> ActionResult:
    executor = app.executor(**options)
    try:
        result: ActionResult = getattr(executor, action)(*args)
        return result
    finally:
        executor.close()


def test_retry_runs_queue_retry_with_uuids(app: App) -> None:
    one, two, keep = app.add("emails"), app.add("reports"), app.add()
    result = _run(app, "retry", [one, "no-such-uuid", two, one])
    assert result == ActionResult(succeeded=2, missing=1)
    # Only the uuids that exist are passed, once each, never a numeric id first.
    assert app.commands() == [["queue:retry", one, two, "--no-interaction", "--no-ansi"]]
    assert app.failed() == {keep}
    pushed = app.jobs()
    assert [(j["queue"], j["attempts"], j["reserved_at"]) for j in pushed] == [
        ("emails", 0, None),
        ("reports", 0, None),
    ]
    assert json.loads(pushed[0]["payload"])["attempts"] == 0


def test_unable_to_find_is_missing_not_success(app: App) -> None:
    one, two = app.add(), app.add()
    executor = app.executor()
    real = executor._run

    def forgotten_meanwhile(argv: Sequence[str]) -> CommandResult:
        # Another hand forgets `two` between our check and artisan's own lookup.
        with app.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM failed_jobs WHERE uuid = :u"), {"u": two})
        return real(argv)

    executor._run = forgotten_meanwhile
    try:
        result = executor.retry([one, two])
    finally:
        executor.close()
    # queue:retry exited 0 and printed "Unable to find failed job with ID [two]".
    assert result == ActionResult(succeeded=1, missing=1)
    assert len(app.jobs()) == 1


def test_a_crashing_command_fails_every_job_with_its_output(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = app.add(), app.add()
    monkeypatch.setenv("STANDIN_CRASH", "1")
    result = _run(app, "retry", [one, two])
    assert (result.succeeded, result.missing, result.failed) == (0, 0, 2)
    assert result.errors[0] == (
        f"{one}: php artisan queue:retry exited 1: PHP Fatal error: Uncaught RuntimeException: "
        "Connection refused in /app/vendor/laravel/framework/src/Illuminate/Queue/"
        "QueueManager.php:180"
    )
    assert app.failed() == {one, two} and app.jobs() == []


def test_a_hanging_command_is_killed_at_the_timeout(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = app.add()
    monkeypatch.setenv("STANDIN_SLEEP", "30")
    started = time.monotonic()
    result = _run(app, "retry", [job], artisan_timeout=1.0)
    assert time.monotonic() - started < 10
    assert result.failed == 1 and "php artisan queue:retry timed out" in result.errors[0]
    assert app.failed() == {job}


def test_delete_runs_queue_forget_and_horizon_forget(app: App) -> None:
    one, two, keep = app.add(), app.add(), app.add()
    assert _run(app, "delete", [one, "gone"]) == ActionResult(succeeded=1, missing=1)
    assert _run(app, "delete", [two], horizon=True, redis_url="redis://127.0.0.1:6379/0") == (
        ActionResult(succeeded=1)
    )
    assert app.commands() == [
        ["queue:forget", one, "--no-interaction", "--no-ansi"],
        ["queue:forget", "gone", "--no-interaction", "--no-ansi"],
        ["horizon:forget", two, "--no-interaction", "--no-ansi"],
    ]
    assert app.failed() == {keep}


def test_retry_queue_passes_uuids_never_all(app: App) -> None:
    emails = [app.add("emails", hours_ago=h) for h in (3, 2, 1)]
    late = app.add("emails", hours_ago=0)
    other = app.add("reports", hours_ago=2)
    asked = datetime.now(UTC) - timedelta(minutes=30)
    executor = app.executor(batch_size=2)
    try:
        assert executor.retry_queue("emails", asked) == ActionResult(succeeded=3)
    finally:
        executor.close()
    for argv in app.commands():
        assert argv[0] == "queue:retry" and "all" not in argv
        assert not any(a.startswith("--queue") for a in argv)
    assert [len(argv) - 3 for argv in app.commands()] == [2, 1]
    assert app.failed() == {late, other}
    assert sorted(json.loads(j["payload"])["uuid"] for j in app.jobs()) == sorted(emails)


def test_prune_runs_prune_failed_with_whole_hours(app: App) -> None:
    old = [app.add(hours_ago=30), app.add(hours_ago=25)]
    recent = app.add(hours_ago=2)
    older_than = datetime.now(UTC) - timedelta(hours=24)
    assert _run(app, "prune", older_than) == ActionResult(succeeded=2)
    assert app.commands() == [["queue:prune-failed", "--hours=24", "--no-interaction", "--no-ansi"]]
    assert app.failed() == {recent} and not set(old) & app.failed()


def test_a_missing_php_is_a_failure_not_a_success(app: App) -> None:
    job = app.add()
    result = _run(app, "retry", [job], php="/nonexistent/php")
    assert result.failed == 1 and "could not start" in result.errors[0]
    assert app.failed() == {job}

"""The whole loop on each database: API/CLI → spool → agent → the project's Laravel tables."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.web import create_app

NOW = datetime.now(UTC).replace(microsecond=0, tzinfo=None)


def _failures(url: str, specs: list[tuple[str, str, datetime]]) -> list[str]:
    """Insert Laravel failed_jobs rows (queue, job name, failed_at); return their uuids."""
    engine = create_engine(url)
    laravel_schema.create_tables(engine)
    rows, ids = [], []
    for queue, name, failed_at in specs:
        job_uuid = str(uuid.uuid4())
        ids.append(job_uuid)
        rows.append(
            {
                "uuid": job_uuid,
                "connection": "database",
                "queue": queue,
                "payload": laravel_payload.build_payload(
                    name, uuid=job_uuid, max_tries=3, attempts=3
                ),
                "exception": f"RuntimeException: boom {job_uuid[:4]} in /app/Jobs/X.php:12\n"
                "Stack trace:\n#0 {main}",
                "failed_at": failed_at,
            }
        )
    with engine.begin() as connection:
        laravel_schema.insert_failed_jobs(connection, rows)
    engine.dispose()
    return ids


def _settings(tmp_path: Path, spool_url: str, projects: dict[str, str]) -> Settings:
    text = f'[spool]\nurl = "{spool_url}"\nlease_seconds = 30\n'
    for key, url in projects.items():
        text += f'[[projects]]\nkey = "{key}"\ndriver = "laravel"\nurl = "{url}"\n'
    file = tmp_path / "failboard.toml"
    file.write_text(text)
    return parse_settings(text, source=file)


def _jobs_rows(url: str) -> list[dict[str, object]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = [dict(r._mapping) for r in connection.execute(sa.text("SELECT * FROM jobs"))]
    engine.dispose()
    return rows


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[Settings, Board, list[str]]]:
    ids = _failures(
        db_url,
        [("emails", "App\\Jobs\\SendMail", NOW - timedelta(hours=h)) for h in range(1, 6)]
        + [("payments", "App\\Jobs\\Charge", NOW - timedelta(hours=h)) for h in (30, 40)],
    )
    # The spool lives in the same database server here; in production it is usually apart.
    settings = _settings(tmp_path, db_url, {"shop": db_url})
    board = Board(settings)
    board.spool.migrate()
    yield settings, board, ids
    board.close()


def _agent(settings: Settings, board: Board) -> Agent:
    project = settings.project("shop")
    return Agent(board.spool, "shop", lambda: registry.make_executor(project), name="test:1")


def test_retry_through_the_api_lands_in_the_jobs_table(
    world: tuple[Settings, Board, list[str]], db_url: str
) -> None:
    settings, board, _ids = world
    with TestClient(create_app(settings, board=board, inline=False)) as client:
        listed = client.get("/api/v1/jobs", params={"project": "shop", "limit": 3}).json()
        assert [j["queue"] for j in listed["items"]] == ["emails"] * 3
        assert listed["next_cursor"] and listed["errors"] == []
        target = listed["items"][0]["id"]

        created = client.post(
            "/api/v1/actions", json={"project": "shop", "action": "retry", "job_ids": [target]}
        )
        assert created.status_code == 202, created.text
        action = created.json()
        assert action["status"] == "pending"

        agent = _agent(settings, board)
        assert agent.run_once() == 1
        agent.close()

        done = client.get(f"/api/v1/actions/{action['id']}").json()
        assert done["status"] == "completed"
        assert done["result"]["succeeded"] == 1
        assert done["progress"] == {"done": 1, "total": 1}
        assert done["claimed_by"] == "test:1"
        assert client.get(f"/api/v1/jobs/shop/{target}").status_code == 404

    pushed = _jobs_rows(db_url)
    assert len(pushed) == 1
    assert pushed[0]["queue"] == "emails" and pushed[0]["attempts"] == 0
    assert json.loads(str(pushed[0]["payload"]))["uuid"] == target


def test_retry_queue_prune_and_delete_missing_through_the_cli(
    world: tuple[Settings, Board, list[str]], db_url: str
) -> None:
    settings, board, _ids = world
    runner = CliRunner()
    config = ["--config", str(settings.source)]

    out = runner.invoke(cli_app, ["retry", "shop", "--queue", "payments", "--json", *config])
    assert out.exit_code == 0, out.output
    retry_queue = json.loads(out.stdout)
    assert retry_queue["action"] == "retry_queue"
    assert retry_queue["params"]["queue"] == "payments"

    out = runner.invoke(cli_app, ["delete", "shop", "no-such-id", "--json", *config])
    delete_missing = json.loads(out.stdout)
    out = runner.invoke(cli_app, ["prune", "shop", "--hours", "4.5", "--json", *config])
    prune = json.loads(out.stdout)

    agent = _agent(settings, board)
    assert agent.run_once() == 3
    agent.close()

    results = {a.id: a for a in board.actions(project="shop")}
    assert results[retry_queue["id"]].result.succeeded == 2  # type: ignore[union-attr]
    assert results[delete_missing["id"]].result.missing == 1  # type: ignore[union-attr]
    assert results[delete_missing["id"]].status == "completed"
    assert results[prune["id"]].result.succeeded == 1  # type: ignore[union-attr]  # the 5 h one

    assert sorted(r["queue"] for r in _jobs_rows(db_url)) == ["payments", "payments"]
    left = runner.invoke(cli_app, ["jobs", "list", "--json", *config])
    assert left.exit_code == 0, left.output
    assert len(json.loads(left.stdout)) == 4

    listed = runner.invoke(cli_app, ["actions", "--json", *config])
    assert [a["status"] for a in json.loads(listed.stdout)] == ["completed"] * 3


def test_bad_requests_get_clear_answers(world: tuple[Settings, Board, list[str]]) -> None:
    settings, board, _ids = world
    with TestClient(create_app(settings, board=board, inline=False)) as client:
        bad_hours = client.post(
            "/api/v1/actions", json={"project": "shop", "action": "prune", "hours": 0}
        )
        assert bad_hours.status_code == 422 and "hours" in bad_hours.text
        unknown = client.post(
            "/api/v1/actions", json={"project": "nope", "action": "retry", "job_ids": ["1"]}
        )
        assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
        assert client.get("/api/v1/jobs/shop/does-not-exist").status_code == 404
        assert client.get("/api/v1/jobs", params={"limit": 501}).status_code == 422
        assert client.get("/api/v1/jobs", params={"cursor": "garbage"}).status_code == 422
        assert client.get("/api/v1/actions/999999").status_code == 404
        once = client.post(
            "/api/v1/actions",
            json={"project": "shop", "action": "delete", "job_ids": ["x"], "idempotency_key": "k"},
        ).json()
        twice = client.post(
            "/api/v1/actions",
            json={"project": "shop", "action": "delete", "job_ids": ["x"], "idempotency_key": "k"},
        ).json()
        assert once["id"] == twice["id"]
        cancelled = client.post(f"/api/v1/actions/{once['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        again = client.post(f"/api/v1/actions/{once['id']}/cancel")
        assert again.status_code == 409

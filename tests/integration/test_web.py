"""The API and the first pages over real SQLite stores, with one project unreachable."""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from failboard.config import parse_settings
from failboard.db import create_engine
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.models import ActionResult
from failboard.web import create_app

HOSTILE = '<script>alert("x")</script>"><img src=x onerror=alert(1)>'


def _project(path: Path, name: str, count: int) -> str:
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    laravel_schema.create_tables(engine)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rows = []
    for i in range(count):
        job_uuid = str(uuid.uuid4())
        rows.append(
            {
                "uuid": job_uuid,
                "connection": "database",
                "queue": "default",
                "payload": laravel_payload.build_payload(name, uuid=job_uuid),
                "exception": f"RuntimeException: {HOSTILE} #{i} in /app/x.php:1\nStack trace:\n#0",
                "failed_at": now - timedelta(minutes=i),
            }
        )
    with engine.begin() as connection:
        laravel_schema.insert_failed_jobs(connection, rows)
    engine.dispose()
    return url


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    shop = _project(tmp_path / "shop.db", "App\\Jobs\\<b>Bold</b>", 3)
    billing = _project(tmp_path / "billing.db", "App\\Jobs\\Charge", 2)
    text = f"""
[spool]
url = "sqlite:///{tmp_path}/spool.db"
[server]
store_timeout_seconds = 2
[[projects]]
key = "shop"
name = "Shop API"
driver = "laravel"
url = "{shop}"
[[projects]]
key = "billing"
driver = "laravel"
url = "{billing}"
[[projects]]
key = "down"
driver = "laravel"
url = "postgresql+psycopg://nobody:wrong@127.0.0.1:1/nothing"
"""
    settings = parse_settings(text, source=tmp_path / "failboard.toml")
    app = create_app(settings, inline=False)
    app.state.board.spool.migrate()
    with TestClient(app) as test_client:
        yield test_client


def test_jobs_from_every_reachable_project_and_an_error_for_the_other(client: TestClient) -> None:
    body = client.get("/api/v1/jobs").json()
    assert sorted({j["project"] for j in body["items"]}) == ["billing", "shop"]
    assert len(body["items"]) == 5
    assert [e["project"] for e in body["errors"]] == ["down"]
    assert body["items"][0]["failed_at"].endswith("Z")
    projects = {p["key"]: p for p in client.get("/api/v1/projects").json()}
    assert projects["down"]["status"] == "unreachable" and projects["down"]["error"]
    assert projects["shop"]["status"] == "ok" and projects["shop"]["failed_count"] == 3
    only = client.get("/api/v1/jobs", params=[("project", "billing")]).json()
    assert {j["project"] for j in only["items"]} == {"billing"} and only["errors"] == []


def test_groups_metrics_health_and_openapi(client: TestClient) -> None:
    groups = client.get("/api/v1/groups").json()
    # The message differs only by a number, so each job name makes one group.
    assert sorted(g["count"] for g in groups) == [2, 3]
    assert client.get("/healthz").json() == {"status": "ok"}
    metrics = client.get("/metrics").text
    assert 'failboard_project_up{project="down"} 0' in metrics
    assert 'failboard_failed_jobs{project="shop"} 3' in metrics
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/jobs", "/api/v1/actions", "/api/v1/projects", "/api/v1/groups"} <= set(paths)


def test_the_pages_escape_what_the_stores_hold(client: TestClient) -> None:
    page = client.get("/").text
    assert "Shop API" in page and "billing" in page
    assert "<script>alert" not in page and "<b>Bold</b>" not in page
    assert html.escape("<b>Bold</b>") in page
    assert "is unreachable" in page
    job_id = client.get("/api/v1/jobs", params={"project": "shop", "limit": 1}).json()["items"][0][
        "id"
    ]
    detail = client.get(f"/jobs/shop/{job_id}").text
    assert "<script>alert" not in detail and "onerror=alert(1)>" not in detail
    assert "Stack trace" in detail
    assert client.get("/jobs/shop/nope").status_code == 404
    assert client.get("/actions").status_code == 200


def _samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name → (sorted labels → value), parsed from the exposition format."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _by(project: str, **labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"project": project, **labels}.items()))


def test_metrics_count_actions_by_status_agent_heartbeats_and_store_errors(
    client: TestClient,
) -> None:
    spool = client.app.state.board.spool

    def submit(project: str, action: str, job_id: str) -> int:
        body = {"project": project, "action": action, "job_ids": [job_id]}
        response = client.post("/api/v1/actions", json=body)
        assert response.status_code == 202, response.text
        return int(response.json()["id"])

    for n in range(4):
        submit("shop", "retry", str(n))
    # Claimed oldest first: the first three are processing until settled below.
    done, failing, _still = spool.claim("shop", "host:1", limit=3)
    spool.complete(done.id, done.claim_token, ActionResult(succeeded=1))
    spool.fail(failing.id, failing.claim_token, "the store went away", retryable=False)
    assert client.post(f"/api/v1/actions/{submit('shop', 'retry', '9')}/cancel").status_code == 200
    submit("billing", "delete", "1")
    before = datetime.now(UTC)
    spool.record_agent("shop", "host:1")  # the agent's "seen" heartbeat
    after = datetime.now(UTC)

    first = _samples(client.get("/metrics").text)
    assert first["failboard_actions"] == {
        _by("shop", action="retry", status="pending"): 1,  # the fourth, never claimed
        _by("shop", action="retry", status="processing"): 1,
        _by("shop", action="retry", status="completed"): 1,
        _by("shop", action="retry", status="failed"): 1,
        _by("shop", action="retry", status="cancelled"): 1,
        _by("billing", action="delete", status="pending"): 1,
    }
    assert first["failboard_open_actions"] == {_by("shop"): 2, _by("billing"): 1, _by("down"): 0}
    assert first["failboard_project_up"] == {_by("shop"): 1, _by("billing"): 1, _by("down"): 0}
    # Only a project whose agent was seen has the series; its value is that moment.
    seen = first["failboard_agent_last_seen_seconds"]
    assert list(seen) == [_by("shop")]
    assert seen[_by("shop")] == spool.agents_last_seen()["shop"].timestamp()
    assert before.timestamp() - 1 <= seen[_by("shop")] <= after.timestamp()
    # The scrape itself asked the unreachable store once; the others never failed.
    errors = "failboard_store_errors_total"
    assert first[errors] == {_by("shop"): 0, _by("billing"): 0, _by("down"): 1}
    assert client.get("/api/v1/jobs").json()["errors"][0]["project"] == "down"
    again = _samples(client.get("/metrics").text)
    assert again[errors] == {_by("shop"): 0, _by("billing"): 0, _by("down"): 3}

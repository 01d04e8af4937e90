"""The API and the first pages over real SQLite stores, with one project unreachable."""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from failboard.config import parse_settings
from failboard.db import create_engine
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
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

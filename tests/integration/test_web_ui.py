"""The pages' safety and their write paths, over real SQLite stores (no browser)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from failboard.config import parse_settings
from failboard.web import create_app
from tests.integration.test_web import _project


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    shop = _project(tmp_path / "shop.db", "App\\Jobs\\Mail", 30)
    text = f"""
[spool]
url = "sqlite:///{tmp_path}/spool.db"
[[projects]]
key = "shop"
driver = "laravel"
url = "{shop}"
"""
    app = create_app(parse_settings(text, source=tmp_path / "f.toml"), inline=False)
    app.state.board.spool.migrate()
    with TestClient(app) as test_client:
        yield test_client


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handlers += [f"{tag} {name}" for name, _ in attrs if name.startswith("on")]


def _handlers(page: str) -> list[str]:
    """Inline event handler attributes (the CSP would block them)."""
    parser = _Attributes()
    parser.feed(page)
    return parser.handlers


def _token(client: TestClient) -> str:
    page = client.get("/").text
    found = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page)
    assert found
    return found.group(1)


def _ids(client: TestClient, limit: int = 3) -> list[str]:
    items = client.get("/api/v1/jobs", params={"limit": limit}).json()["items"]
    return [item["id"] for item in items]


def test_headers_and_cookie(client: TestClient) -> None:
    response = client.get("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    cookie = response.headers["set-cookie"]
    # Lax, not Strict: a job link pasted in chat must open signed in (docs/security.md); every
    # write needs the CSRF token whatever the cookie's SameSite.
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # Inline script or style would be blocked by the CSP: the pages must carry none.
    job = f"/jobs/shop/{_ids(client, 1)[0]}"
    for path in ("/", "/groups", "/actions", "/projects", job, "/docs", "/login"):
        page = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), path
        assert " style=" not in page and "<style" not in page, path
        assert not _handlers(page), path


def test_browser_writes_need_the_csrf_token(client: TestClient) -> None:
    token = _token(client)
    body = {"action": "retry", "jobs": [{"project": "shop", "id": _ids(client, 1)[0]}]}
    body["key"] = "k" * 10
    assert client.post("/ui/actions", json=body).status_code == 403
    bad = client.post("/ui/actions", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert bad.status_code == 403
    ok = client.post("/ui/actions", json=body, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200
    # Same key, same click: one action.
    again = client.post("/ui/actions", json=body, headers={"X-CSRF-Token": token})
    assert again.json()["actions"][0]["id"] == ok.json()["actions"][0]["id"]
    # A browser (it has our cookie) must send the token to the JSON API too...
    api = {"project": "shop", "action": "prune", "hours": 1}
    assert client.post("/api/v1/actions", json=api).status_code == 403
    assert (
        client.post("/api/v1/actions", json=api, headers={"X-CSRF-Token": token}).status_code == 202
    )
    # ...while a script (no cookie) may post JSON, and only JSON.
    client.cookies.clear()
    assert client.post("/api/v1/actions", json=api).status_code == 202
    form = client.post(
        "/api/v1/actions",
        content=b"project=shop",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    plain = client.post("/api/v1/actions", content=b"{}", headers={"content-type": "text/plain"})
    assert plain.status_code == 415


def test_select_all_matching_is_frozen_at_the_click(client: TestClient) -> None:
    token = _token(client)
    headers = {"X-CSRF-Token": token}
    frozen = client.post(
        "/ui/selections",
        json={"kind": "matching", "action": "delete", "query": "project=shop&q=%23"},
        headers=headers,
    ).json()
    assert frozen["count"] == 30 and frozen["counts"] == {"shop": 30}
    made = client.post(f"/ui/selections/{frozen['selection']}", headers=headers).json()
    [action] = made["actions"]
    assert action["action"] == "delete" and len(action["params"]["job_ids"]) == 30
    # A selection is used once.
    assert client.post(f"/ui/selections/{frozen['selection']}", headers=headers).status_code == 404
    # Only a queue chosen: one retry_queue, bounded by the moment of the click.
    queue = client.post(
        "/ui/selections",
        json={"kind": "matching", "action": "retry", "query": "queue=default"},
        headers=headers,
    ).json()
    assert queue["action"] == "retry_queue" and queue["count"] == 30
    made = client.post(f"/ui/selections/{queue['selection']}", headers=headers).json()
    assert made["actions"][0]["params"]["failed_before"] == queue["moment"]
    # Rows named by an open action show it instead of offering a second retry.
    page = client.get("/").text
    assert page.count("delete pending") == 30 and 'data-act="retry"' not in page


def test_prune_dry_run_counts_and_pages_answer(client: TestClient) -> None:
    token = _token(client)
    dry = client.post(
        "/ui/selections", json={"kind": "prune", "hours": 0.25}, headers={"X-CSRF-Token": token}
    ).json()
    # The fixture's jobs failed one a minute, newest now: 14 or 15 are older than 15 minutes.
    assert dry["action"] == "prune" and dry["count"] in (14, 15)
    assert client.get("/ui/counts").json()["text"] == "30"
    first = client.get("/", params={"limit": 10}).text
    nxt = re.search(r'rel="next" href="/\?([^"]+)"', first)
    assert nxt
    second = client.get("/?" + nxt.group(1).replace("&amp;", "&")).text
    prev = re.search(r'rel="prev" href="/\?([^"]+)"', second)
    assert prev
    back = client.get("/?" + prev.group(1).replace("&amp;", "&")).text
    ids = re.findall(r'data-id="([^"]+)"', first)
    assert re.findall(r'data-id="([^"]+)"', back) == ids
    assert client.get("/projects?span=7d").status_code == 200
    assert client.get("/groups").status_code == 200
    assert client.get("/static/app.js").status_code == 200
    metrics = client.get("/metrics").text
    assert 'failboard_failed_jobs_by_queue{project="shop",queue="default"} 30.0' in metrics

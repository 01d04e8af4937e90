"""Two dashboards (two ``create_app``) over ONE spool database agree on sign-outs, on the sign-in
rate limit and on frozen selections; and when the spool cannot be reached, each still signs out,
serves signed-in pages and throttles on its own. Real SQLite, PostgreSQL and MariaDB spools;
time is an injected clock, never a sleep."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from failboard.auth import hash_password
from failboard.config import parse_settings
from failboard.web import create_app
from tests.faults.proxy import Proxy
from tests.integration.test_web import _project
from tests.services import fresh_database

SECRET = "k" * 40
PASSWORD = "correct horse battery staple"
HASHED = hash_password(PASSWORD)
UNREACHABLE = "postgresql+psycopg://fb:s3cret@127.0.0.1:1/spool"


class Clock:
    """The dashboards' shared wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _settings(tmp: Path, spool_url: str) -> Any:
    shop = _project(tmp / "shop.db", "App\\Jobs\\Mail", 4)
    billing = _project(tmp / "billing.db", "App\\Jobs\\Charge", 3)
    text = f"""
[spool]
url = "{spool_url}"
[server]
secret_key = "{SECRET}"
store_timeout_seconds = 2
[[projects]]
key = "shop"
driver = "laravel"
url = "{shop}"
[[projects]]
key = "billing"
driver = "laravel"
url = "{billing}"
[[users]]
name = "ops"
password_hash = "{HASHED}"
role = "operator"
projects = ["*"]
[[users]]
name = "root"
password_hash = "{HASHED}"
role = "admin"
projects = ["*"]
"""
    return parse_settings(text, source=tmp / "failboard.toml")


@dataclass
class Pair:
    a: FastAPI
    b: FastAPI
    clock: Clock

    def client(self, app: FastAPI, address: str = "192.0.2.1") -> TestClient:
        return TestClient(app, client=(address, 40000), follow_redirects=False)


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with fresh_database("mysql" if request.param == "mariadb" else request.param) as url:
        settings = _settings(tmp_path, url)
        clock = Clock()
        a = create_app(settings, inline=False, clock=clock)
        b = create_app(settings, inline=False, clock=clock)
        a.state.board.spool.migrate()
        try:
            yield Pair(a, b, clock)
        finally:
            a.state.board.close()
            b.state.board.close()


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf[-_]token" (?:content|value)="([0-9a-f]{64})"', page)
    assert found, page[:500]
    return found.group(1)


def _attempt(client: TestClient, name: str, password: str) -> Any:
    token = _csrf(client.get("/login").text)
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token})


def _sign_in(client: TestClient, name: str = "ops") -> str:
    """Signs ``client`` in; its CSRF token."""
    assert _attempt(client, name, PASSWORD).status_code == 303
    return _csrf(client.get("/").text)


def _same_browser(pair: Pair, app: FastAPI, signed: TestClient) -> TestClient:
    """Another dashboard reached by the same browser (its cookie) through the load balancer."""
    other = pair.client(app)
    other.cookies["failboard_session"] = signed.cookies["failboard_session"]
    return other


# -- sessions ---------------------------------------------------------------------------------


def test_a_sign_out_on_one_dashboard_is_refused_by_the_other(pair: Pair) -> None:
    on_a = pair.client(pair.a)
    token = _sign_in(on_a)
    cookie = on_a.cookies["failboard_session"]
    on_b = _same_browser(pair, pair.b, on_a)
    assert on_b.get("/").status_code == 200
    assert on_a.post("/logout", data={"csrf_token": token}).status_code == 303
    refused = on_b.get("/")
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
    assert on_b.get("/api/v1/jobs").status_code == 401
    # Replayed on A too, of course.
    replay = pair.client(pair.a)
    replay.cookies["failboard_session"] = cookie
    assert replay.get("/").status_code == 303


# -- the sign-in rate limit -------------------------------------------------------------------


def test_failures_for_one_name_are_counted_across_dashboards(pair: Pair) -> None:
    on_a, on_b = pair.client(pair.a, "192.0.2.10"), pair.client(pair.b, "192.0.2.11")
    for client in (on_a, on_b, on_a, on_b, on_a):
        assert _attempt(client, "ops", "wrong").status_code == 401
        pair.clock.advance(10)
    for client in (on_a, on_b):  # even the right password waits now, on either dashboard
        locked = _attempt(client, "ops", PASSWORD)
        assert locked.status_code == 429
        # Until the first failure (50 s ago) leaves the 5-minute window.
        assert locked.headers["retry-after"] == "250"
    pair.clock.advance(250)
    assert _attempt(on_b, "ops", PASSWORD).status_code == 303


def test_a_sign_in_on_one_dashboard_forgives_the_name_on_the_other(pair: Pair) -> None:
    on_a, on_b = pair.client(pair.a, "192.0.2.20"), pair.client(pair.b, "192.0.2.21")
    for client in (on_a, on_b, on_a, on_b):
        assert _attempt(client, "root", "wrong").status_code == 401
    assert _attempt(pair.client(pair.a, "192.0.2.22"), "root", PASSWORD).status_code == 303
    # Forgiven: five more failures before B refuses (without it, the second would be refused).
    codes = [_attempt(on_b, "root", "wrong").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]


def test_failures_from_one_address_are_counted_across_dashboards(pair: Pair) -> None:
    address = "192.0.2.30"
    on_a, on_b = pair.client(pair.a, address), pair.client(pair.b, address)
    for i in range(20):
        client = on_a if i % 2 else on_b
        assert _attempt(client, f"guess{i}", "wrong").status_code == 401
    for client in (on_a, on_b):
        assert _attempt(client, "someone-else", "wrong").status_code == 429
    # Another address is not held back.
    assert _attempt(pair.client(pair.b, "192.0.2.31"), "ops", PASSWORD).status_code == 303


# -- frozen selections ------------------------------------------------------------------------


def _select_all(client: TestClient, token: str) -> dict[str, Any]:
    frozen = client.post(
        "/ui/selections",
        json={"kind": "matching", "action": "delete", "query": ""},
        headers={"X-CSRF-Token": token},
    )
    assert frozen.status_code == 200, frozen.text
    body: dict[str, Any] = frozen.json()
    return body


def _confirm(client: TestClient, token: str, selection: str) -> Any:
    return client.post(f"/ui/selections/{selection}", headers={"X-CSRF-Token": token})


def test_a_selection_made_on_one_dashboard_is_confirmed_once_on_another(pair: Pair) -> None:
    on_a = pair.client(pair.a)
    token = _sign_in(on_a)
    on_b = _same_browser(pair, pair.b, on_a)
    frozen = _select_all(on_a, token)
    assert frozen["counts"] == {"shop": 4, "billing": 3}
    made = _confirm(on_b, token, frozen["selection"])
    assert made.status_code == 200, made.text
    counts = {a["project"]: len(a["params"]["job_ids"]) for a in made.json()["actions"]}
    assert counts == frozen["counts"]  # one action per project, exactly the frozen set
    again = _confirm(on_a, token, frozen["selection"])
    assert again.status_code == 404 and "expired" in again.json()["detail"]
    assert len(pair.a.state.board.spool.list()) == 2
    # Another browser (session) cannot confirm it, even before it is taken.
    other = pair.client(pair.b, "192.0.2.40")
    other_token = _sign_in(other)
    second = _select_all(on_a, token)
    assert _confirm(other, other_token, second["selection"]).status_code == 404
    assert _confirm(on_b, token, second["selection"]).status_code == 200


def test_a_selection_expires_after_15_minutes_on_every_dashboard(pair: Pair) -> None:
    on_a = pair.client(pair.a)
    token = _sign_in(on_a)
    on_b = _same_browser(pair, pair.b, on_a)
    kept = _select_all(on_a, token)
    pair.clock.advance(15 * 60 - 1)
    assert _confirm(on_b, token, kept["selection"]).status_code == 200
    late = _select_all(on_a, token)
    pair.clock.advance(15 * 60)
    assert _confirm(on_b, token, late["selection"]).status_code == 404
    assert len(pair.a.state.board.spool.list()) == 2  # only the first one's two actions


def _race(token: str, selection: str, *clients: TestClient) -> list[int]:
    """Every client confirms ``selection`` at once (released by one barrier); their codes."""
    start = threading.Barrier(len(clients))
    codes: list[int] = []

    def confirm(client: TestClient) -> None:
        start.wait()
        codes.append(_confirm(client, token, selection).status_code)

    threads = [threading.Thread(target=confirm, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return codes


def test_two_dashboards_confirming_one_selection_at_once_submit_it_once(pair: Pair) -> None:
    on_a = pair.client(pair.a)
    token = _sign_in(on_a)
    on_b = _same_browser(pair, pair.b, on_a)
    rounds = 5
    for _ in range(rounds):
        selection = _select_all(on_a, token)["selection"]
        assert sorted(_race(token, selection, on_a, on_b)) == [200, 404]
    assert len(pair.a.state.board.spool.list()) == 2 * rounds  # one action per project each


# -- the spool cannot be reached --------------------------------------------------------------


def test_without_the_spool_a_dashboard_still_signs_in_out_and_throttles(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(_settings(tmp_path, UNREACHABLE), inline=False)
    client = TestClient(app, client=("192.0.2.50", 40000), follow_redirects=False)
    with caplog.at_level(logging.WARNING, logger="failboard.web"):
        token = _sign_in(client)
        cookie = client.cookies["failboard_session"]
        page = client.get("/")
        assert page.status_code == 200 and "ops · operator" in page.text
        # Selections need the spool (what they submit goes there): a clear 503.
        frozen = client.post(
            "/ui/selections",
            json={"kind": "matching", "query": ""},
            headers={"X-CSRF-Token": token},
        )
        assert frozen.status_code == 503 and "cannot connect" in frozen.json()["detail"]
        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
        replay = TestClient(app, client=("192.0.2.51", 40000), follow_redirects=False)
        replay.cookies["failboard_session"] = cookie
        assert replay.get("/").status_code == 303  # ended, on this dashboard
        guesser = TestClient(app, client=("192.0.2.52", 40000), follow_redirects=False)
        codes = [_attempt(guesser, "root", "wrong").status_code for _ in range(6)]
        assert codes == [401] * 5 + [429]  # counted in this process
    assert "ended the session on this dashboard only" in caplog.text
    assert "the spool cannot answer" in caplog.text
    assert "s3cret" not in caplog.text


def test_a_spool_cut_mid_session_signs_nobody_out_and_sharing_resumes_after(
    tmp_path: Path,
) -> None:
    with fresh_database("postgres") as url, Proxy.for_url(url) as proxy:
        clock = Clock()
        settings = _settings(tmp_path, proxy.url(url))
        a = create_app(settings, inline=False, clock=clock)
        pair = Pair(a, create_app(settings, inline=False, clock=clock), clock)
        pair.a.state.board.spool.migrate()
        for app in (pair.a, pair.b):
            # Ask the spool again at once after a failure (not 5 s later): no waiting here.
            app.state.gate.codec.outage.pause = 0
        try:
            on_a = pair.client(pair.a)
            token = _sign_in(on_a)
            on_b = _same_browser(pair, pair.b, on_a)
            leaving = pair.client(pair.a, "192.0.2.60")
            leaving_token = _sign_in(leaving)
            cookie = leaving.cookies["failboard_session"]
            proxy.cut()
            # Pooled connections die and new ones are refused: nobody is signed out...
            assert on_a.get("/").status_code == 200 and on_b.get("/").status_code == 200
            # ...a sign-out holds on its own dashboard, and only there (docs/security.md).
            assert leaving.post("/logout", data={"csrf_token": leaving_token}).status_code == 303
            replay_a = pair.client(pair.a)
            replay_a.cookies["failboard_session"] = cookie
            assert replay_a.get("/").status_code == 303
            assert proxy.refused > 0
            proxy.restore()
            # Back: a sign-out on A is refused by B again.
            assert on_b.get("/").status_code == 200
            assert on_a.post("/logout", data={"csrf_token": token}).status_code == 303
            assert on_b.get("/").status_code == 303
        finally:
            pair.a.state.board.close()
            pair.b.state.board.close()


def test_without_password_users_no_request_reads_the_shared_tables(tmp_path: Path) -> None:
    text = f'[spool]\nurl = "{UNREACHABLE}"\n'
    app = create_app(parse_settings(text, source=tmp_path / "f.toml"), inline=False)
    assert not app.state.gate.codec.needs_database
    assert app.state.gate.throttle.names.shared is None

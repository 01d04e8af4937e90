"""The HTTP agent mode against a live dashboard (uvicorn on a loopback port, real databases):
end to end, token scope, 401/403, fencing, and a dashboard outage the agent rides out."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import sqlalchemy as sa
import uvicorn

from failboard import auth
from failboard.agent import Agent
from failboard.agentclient import AgentClient
from failboard.config import load_settings
from failboard.db import create_engine
from failboard.drivers import registry
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.exceptions import ConfigError, LeaseLost, SpoolError
from failboard.models import ActionKind, ActionResult, ActionStatus
from failboard.spool import Outcome, Spool
from failboard.web import create_app
from tests.faults.proxy import Proxy
from tests.services import fresh_database

SECRET = "test-secret-key-0123456789abcdef0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(url: str, count: int) -> list[str]:
    """Laravel failed_jobs rows (the database queue) in ``url``; their uuids."""
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


def _pushed(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT COUNT(*) FROM jobs")).scalar_one()
    engine.dispose()
    return int(count)


@dataclass
class Live:
    url: str
    spool: Spool
    store: str
    tokens: dict[str, str]  # name → raw token
    folder: Path


class _Server:
    """uvicorn in a thread, on a port chosen by the test."""

    def __init__(self, config: Path, port: int, **options: Any) -> None:
        app = create_app(load_settings(config), inline=False)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _dashboard_config(folder: Path, spool_url: str, store: str) -> tuple[Path, dict[str, str]]:
    tokens = {name: auth.new_token() for name in ("shop-agent", "billing-agent", "ops", "viewer")}
    roles = {
        "shop-agent": ("agent", "shop"),
        "billing-agent": ("agent", "billing"),
        "ops": ("operator", "*"),
        "viewer": ("viewer", "*"),
    }
    text = f'[spool]\nurl = "{spool_url}"\nlease_seconds = 10\n'
    text += f'[server]\nsecret_key = "{SECRET}"\n'
    for key in ("shop", "billing"):
        text += f'[[projects]]\nkey = "{key}"\ndriver = "laravel"\nurl = "{store}"\n'
    for name, (_, digest) in tokens.items():
        role, project = roles[name]
        text += f'[[tokens]]\nname = "{name}"\nsha256 = "{digest}"\nrole = "{role}"\n'
        text += f'projects = ["{project}"]\n'
    config = folder / "dashboard.toml"
    config.write_text(text)
    return config, {name: raw for name, (raw, _) in tokens.items()}


@pytest.fixture(params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    with fresh_database(request.param) as url:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path}/all.db"
        config, tokens = _dashboard_config(tmp_path, url, url)
        spool = Spool(url, lease_seconds=10)
        spool.migrate()
        server = _Server(config, _free_port())
        port = server.server.config.port
        try:
            yield Live(f"http://127.0.0.1:{port}", spool, url, tokens, tmp_path)
        finally:
            server.stop()
            spool.close()


def _agent_config(live: Live, server: str | None = None) -> Path:
    """What an HTTP agent holds: the dashboard, its token and its own project. No [spool]."""
    config = live.folder / "agent.toml"
    config.write_text(
        f'[agent]\nserver = "{server or live.url}"\ntoken = "${{FB_AGENT_TOKEN}}"\n'
        f'[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "{live.store}"\n'
    )
    return config


def _post(live: Live, path: str, token: str | None, body: object = None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{live.url}/api/v1/agent{path}", json=body or {}, headers=headers)


def test_an_http_agent_process_retries_a_laravel_job_to_completion(live: Live) -> None:
    ids = _seed(live.store, 3)
    action = live.spool.submit("shop", ActionKind.RETRY, {"job_ids": ids}, requested_by="ops")
    config = _agent_config(live)
    env = {**os.environ, "FB_AGENT_TOKEN": live.tokens["shop-agent"]}
    env.pop("FAILBOARD_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "failboard", "process-spool", "-p", "shop", "-c", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    final = live.spool.get(action.id)
    assert final.status == ActionStatus.COMPLETED, final
    assert final.result is not None and final.result.succeeded == 3
    assert final.claimed_by is not None and final.claimed_by.startswith("token:shop-agent/")
    assert _pushed(live.store) == 3
    assert "shop" in live.spool.agents_last_seen()
    events = [e.event for e in reversed(live.spool.audit.entries())]
    assert events == ["action.requested", "action.claimed", "action.completed"]
    assert live.spool.audit.verify().ok


def test_the_agent_api_refuses_missing_bad_and_non_agent_tokens(live: Live) -> None:
    assert _post(live, "/claim", None, {"agent": "a"}).status_code == 401
    assert _post(live, "/claim", "fb_not-a-token", {"agent": "a"}).status_code == 401
    basic = httpx.post(
        f"{live.url}/api/v1/agent/claim", json={"agent": "a"}, auth=("shop-agent", "x")
    )
    assert basic.status_code == 401
    for name in ("ops", "viewer"):
        answer = _post(live, "/claim", live.tokens[name], {"agent": "a"})
        assert answer.status_code == 403, answer.text
    assert httpx.get(f"{live.url}/api/v1/agent/now").status_code == 401
    ok = _post(live, "/claim", live.tokens["shop-agent"], {"agent": "a", "limit": 1})
    assert ok.status_code == 200 and ok.json() == []
    with pytest.raises(ConfigError, match="refused the agent token"):
        with AgentClient(live.url, live.tokens["ops"]) as client:
            client.claim("shop", "a")


def test_a_token_for_one_project_never_touches_anothers_actions(live: Live) -> None:
    mine = live.spool.submit("shop", ActionKind.PRUNE, {"hours": 1})
    theirs = live.spool.submit("billing", ActionKind.PRUNE, {"hours": 1})
    shop, billing = live.tokens["shop-agent"], live.tokens["billing-agent"]
    claimed = _post(live, "/claim", shop, {"agent": "a", "limit": 100}).json()
    assert [a["id"] for a in claimed] == [mine.id]
    assert claimed[0]["claim_token"]
    (their_claim,) = _post(live, "/claim", billing, {"agent": "b"}).json()
    token = their_claim["claim_token"]
    before = live.spool.get(theirs.id)
    result = {"succeeded": 1, "missing": 0, "failed": 0}
    for path, body in [
        ("heartbeat", {"claim_token": token}),
        ("progress", {"claim_token": token, "done": 1, "total": 2}),
        ("complete", {"claim_token": token, "result": result}),
        ("fail", {"claim_token": token, "error": "x", "retryable": False}),
        ("release", {"claim_token": token}),
    ]:
        # Even with the right claim token: the shop token cannot reach a billing action.
        answer = _post(live, f"/actions/{theirs.id}/{path}", shop, body)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json() == {"detail": f"action {theirs.id} not found"}
    # The same answer as for an id that does not exist: nothing to learn about billing.
    missing = _post(live, "/actions/999999/heartbeat", shop, {"claim_token": token})
    assert missing.status_code == 404
    after = live.spool.get(theirs.id)
    assert after == before
    assert after.status == ActionStatus.PROCESSING and after.progress.done == 0
    assert after.claimed_by == "token:billing-agent/b"


def test_a_stale_claim_token_gets_409_and_changes_nothing(live: Live) -> None:
    shop = live.tokens["shop-agent"]
    action = live.spool.submit("shop", ActionKind.PRUNE, {"hours": 1})
    (first,) = _post(live, "/claim", shop, {"agent": "a"}).json()
    stale = first["claim_token"]
    released = _post(live, f"/actions/{action.id}/release", shop, {"claim_token": stale})
    assert released.status_code == 200 and released.json()["status"] == "pending"
    (second,) = _post(live, "/claim", shop, {"agent": "b"}).json()
    assert second["claim_token"] != stale
    result = {"succeeded": 9, "missing": 0, "failed": 0}
    for path, body in [
        ("heartbeat", {"claim_token": stale}),
        ("progress", {"claim_token": stale, "done": 5, "total": 9}),
        ("complete", {"claim_token": stale, "result": result}),
        ("fail", {"claim_token": stale, "error": "x"}),
        ("release", {"claim_token": stale}),
    ]:
        answer = _post(live, f"/actions/{action.id}/{path}", shop, body)
        assert answer.status_code == 409, (path, answer.text)
    now = live.spool.get(action.id)
    assert now.status == ActionStatus.PROCESSING and now.claimed_by == "token:shop-agent/b"
    assert now.progress.done == 0 and now.result is None
    # The client turns the 409 into LeaseLost, which the agent loop knows.
    with AgentClient(live.url, shop) as client, pytest.raises(LeaseLost):
        client.complete(action.id, stale, ActionResult(succeeded=1))
    done = _post(
        live,
        f"/actions/{action.id}/complete",
        shop,
        {"claim_token": second["claim_token"], "result": result},
    )
    assert done.status_code == 200 and done.json()["status"] == "completed"


def test_settle_records_many_outcomes_and_only_the_tokens_projects(live: Live) -> None:
    mine = [live.spool.submit("shop", ActionKind.PRUNE, {"hours": 1}) for _ in range(3)]
    theirs = live.spool.submit("billing", ActionKind.PRUNE, {"hours": 1})
    shop, billing = live.tokens["shop-agent"], live.tokens["billing-agent"]
    claimed = _post(live, "/claim", shop, {"agent": "a", "limit": 10}).json()
    (their_claim,) = _post(live, "/claim", billing, {"agent": "b"}).json()
    result = {"succeeded": 2, "missing": 1, "failed": 0}
    outcomes = [{"action_id": c["id"], "claim_token": c["claim_token"], "result": result}
                for c in claimed]  # fmt: skip
    outcomes[1] = {**outcomes[1], "claim_token": "stale"}
    outcomes.append(
        {"action_id": theirs.id, "claim_token": their_claim["claim_token"], "error": "x"}
    )
    answer = _post(live, "/settle", shop, {"outcomes": outcomes})
    assert answer.status_code == 200, answer.text
    assert answer.json() == [
        {"action_id": mine[0].id, "status": "completed"},
        {"action_id": mine[1].id, "status": None},
        {"action_id": mine[2].id, "status": "completed"},
        {"action_id": theirs.id, "status": None},  # another project's: as if lost
    ]
    assert live.spool.get(mine[0].id).result == ActionResult(succeeded=2, missing=1)
    assert live.spool.get(mine[1].id).status is ActionStatus.PROCESSING
    assert live.spool.get(theirs.id).status is ActionStatus.PROCESSING
    # The client speaks the same call.
    with AgentClient(live.url, shop) as client:
        (done,) = client.settle(
            [Outcome(action_id=mine[1].id, claim_token=claimed[1]["claim_token"], error="gone")]
        )
    assert done.status is ActionStatus.FAILED
    assert _post(live, "/settle", shop, {"outcomes": []}).status_code == 422


def test_the_agent_rides_out_a_dashboard_outage(live: Live) -> None:
    ids = _seed(live.store, 2)
    port = int(live.url.rsplit(":", 1)[1])
    with Proxy("127.0.0.1", port) as proxy:
        client = AgentClient(
            f"http://127.0.0.1:{proxy.port}", live.tokens["shop-agent"], timeout=2, backoff=0.05
        )
        settings = load_settings(
            _agent_config(live, f"http://127.0.0.1:{proxy.port}"),
            environ={"FB_AGENT_TOKEN": live.tokens["shop-agent"]},
        )
        project = settings.project("shop")
        agent = Agent(client, "shop", lambda: registry.make_executor(project), name="survivor")
        thread = threading.Thread(target=agent.run, args=(0.2,), daemon=True)
        proxy.cut()
        thread.start()
        try:
            with pytest.raises(SpoolError, match="unavailable"):
                client.claim("shop", "probe")
            action = live.spool.submit("shop", ActionKind.RETRY, {"job_ids": ids})
            time.sleep(3)  # the agent keeps polling into a dead dashboard meanwhile
            assert thread.is_alive()
            assert live.spool.get(action.id).status == ActionStatus.PENDING
            proxy.restore()
            deadline = time.monotonic() + 30
            while not live.spool.get(action.id).status.finished:
                assert time.monotonic() < deadline, "the agent did not come back"
                time.sleep(0.1)
        finally:
            agent.stop()
            thread.join(20)
            agent.close()
            client.close()
    final = live.spool.get(action.id)
    assert final.status == ActionStatus.COMPLETED and final.result is not None
    assert final.result.succeeded == 2
    assert not thread.is_alive()


def test_http_mode_needs_both_server_and_token(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        '[agent]\nserver = "https://failboard.example.com"\n'
        '[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "sqlite:///x.db"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "failboard", "agent", "-p", "shop", "--once", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "agent.token is missing" in done.stderr


def test_the_client_verifies_tls_by_default(live: Live) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    cert, key = live.folder / "cert.pem", live.folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    tls = _Server(live.folder / "dashboard.toml", port, ssl_certfile=cert, ssl_keyfile=key)
    token = live.tokens["shop-agent"]
    try:
        # An unknown (self-signed) certificate is refused, never accepted silently...
        with AgentClient(f"https://127.0.0.1:{port}", token, attempts=1) as client:
            with pytest.raises(SpoolError, match="CERTIFICATE_VERIFY_FAILED"):
                client.claim("shop", "a")
        # ... and trusted once the agent is told about it (SSL_CERT_FILE does the same).
        trusted = ssl.create_default_context(cafile=str(cert))
        with AgentClient(f"https://127.0.0.1:{port}", token, verify=trusted) as client:
            assert client.claim("shop", "a") == []
    finally:
        tls.stop()

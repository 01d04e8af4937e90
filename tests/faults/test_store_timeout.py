"""A project's store is slow (5 s of latency at a loopback proxy) or unreachable: the job list
answers within the store timeout, that project named in ``errors``, the others intact."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from failboard.config import parse_settings
from failboard.web import create_app
from tests.faults.proxy import Proxy
from tests.faults.support import seed, wait_until
from tests.services import fresh_database

STORE_TIMEOUT = 1.0
# The answer may take the timeout plus the merge and the HTTP round trip on a loaded machine.
MARGIN = 1.0
LATENCY = 5.0


def test_a_slow_or_unreachable_store_is_marked_and_the_others_answer(tmp_path: Path) -> None:
    with (
        fresh_database("postgres") as url,
        Proxy.for_url(url, latency=LATENCY) as slow,
        Proxy.for_url(url) as down,
    ):
        seed(url, 20)
        down.cut()
        # Three projects over the same tables, each by its own path: only the path differs.
        settings = parse_settings(
            f'[spool]\nurl = "sqlite:///{tmp_path}/spool.db"\n'
            f"[server]\nstore_timeout_seconds = {STORE_TIMEOUT}\n"
            f'[[projects]]\nkey = "fast"\ndriver = "laravel"\nurl = "{url}"\n'
            f'[[projects]]\nkey = "slow"\ndriver = "laravel"\nurl = "{slow.url(url)}"\n'
            f'[[projects]]\nkey = "down"\ndriver = "laravel"\nurl = "{down.url(url)}"\n',
            environ={},
        )
        app = create_app(settings, inline=False)
        app.state.board.spool.migrate()
        timings: list[float] = []
        with TestClient(app) as web:
            # Twice: the second time the first request's reads of the slow store still hang
            # in their threads, and must not hold this one up either.
            for _ in range(2):
                started = time.monotonic()
                response = web.get("/api/v1/jobs")
                timings.append(time.monotonic() - started)
                assert response.status_code == 200
                body = response.json()
                assert {j["project"] for j in body["items"]} == {"fast"}
                assert len(body["items"]) == 20
                errors = {e["project"]: e["error"] for e in body["errors"]}
                assert set(errors) == {"slow", "down"}
                assert errors["slow"] == f"timed out after {STORE_TIMEOUT:g} s"
                assert "cannot connect" in errors["down"]

            started = time.monotonic()
            projects = {p["key"]: p for p in web.get("/api/v1/projects").json()}
            timings.append(time.monotonic() - started)
            assert projects["fast"]["status"] == "ok" and projects["fast"]["failed_count"] == 20
            assert projects["slow"]["status"] == "unreachable"
            assert projects["down"]["status"] == "unreachable"

            # The store recovers: so does its project, with no restart.
            slow.latency = 0.0
            down.restore()

            def whole() -> bool:
                body = web.get("/api/v1/jobs", params={"limit": 100}).json()
                return body["errors"] == [] and len(body["items"]) == 60

            recovered = wait_until(whole, 30, "the slow and the down project to answer again")
        print(
            f"\nstore timeout {STORE_TIMEOUT:g} s, one store {LATENCY:g} s slow, one down: "
            f"answers in {', '.join(f'{t:.2f}' for t in timings)} s; "
            f"whole again {recovered:.1f} s after the stores recovered"
        )
        assert max(timings) <= STORE_TIMEOUT + MARGIN

"""The embedded demo, as a new user meets it: seeded projects, inline agents, a retry."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from failboard.config import load_settings
from failboard.db import create_engine
from failboard.demo import FAILURES_PER_PROJECT, seed_demo
from failboard.web import create_app


def test_the_demo_shows_three_projects_and_retries_inline(tmp_path: Path) -> None:
    config = seed_demo(tmp_path / "demo")
    settings = load_settings(config)
    with TestClient(create_app(settings)) as client:
        projects = client.get("/api/v1/projects").json()
        assert {p["key"]: p["failed_count"] for p in projects} == FAILURES_PER_PROJECT
        page = client.get("/api/v1/jobs", params={"limit": 500}).json()
        assert {j["project"] for j in page["items"]} == {"shop", "billing", "search"}
        classes = {j["exception_class"] for j in page["items"]}
        assert {"ConnectionRefusedError", "KeyError", "UnicodeDecodeError"} <= classes
        target = next(j for j in page["items"] if j["project"] == "shop")

        action = client.post(
            "/api/v1/actions",
            json={"project": "shop", "action": "retry", "job_ids": [target["id"]]},
        ).json()
        deadline = time.monotonic() + 15
        while action["status"] not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
            action = client.get(f"/api/v1/actions/{action['id']}").json()
        assert action["status"] == "completed", action
        assert action["claimed_by"] == "inline:shop"

    engine = create_engine(settings.project("shop").url)
    with engine.connect() as connection:
        queues = connection.execute(sa.text("SELECT queue FROM jobs")).scalars().all()
    engine.dispose()
    assert queues == [target["queue"]]

    # A second run reuses the seeded data instead of adding to it.
    seed_demo(tmp_path / "demo")
    engine = create_engine(settings.project("shop").url)
    with engine.connect() as connection:
        left = connection.execute(sa.text("SELECT count(*) FROM failed_jobs")).scalar_one()
    engine.dispose()
    assert left == FAILURES_PER_PROJECT["shop"] - 1


def test_the_demo_with_a_password_signs_in_as_admin(tmp_path: Path) -> None:
    config = seed_demo(tmp_path / "demo", admin_password="demo-password-123")
    assert config.stat().st_mode & 0o077 == 0  # the secret key and hash are not for others
    with TestClient(create_app(load_settings(config)), follow_redirects=False) as client:
        assert client.get("/api/v1/jobs").status_code == 401
        assert client.get("/").status_code == 303
        page = client.get("/login").text
        found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page)
        assert found
        form = {"name": "admin", "password": "demo-password-123", "csrf_token": found.group(1)}
        assert client.post("/login", data=form).status_code == 303
        home = client.get("/")
        assert home.status_code == 200 and "admin · admin" in home.text


def _run_demo(data_dir: Path) -> str:
    """``failboard demo`` as a user starts it (seeding only, no server); the password it printed."""
    command = ["demo", "--no-serve", "--port", "0", "--data-dir", str(data_dir)]
    out = subprocess.run(
        [sys.executable, "-m", "failboard", *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    found = re.search(r"sign in:\s+admin / (\S+)", out.stdout)
    assert found, out.stdout
    return found.group(1)


def _signs_in(data_dir: Path, password: str) -> bool:
    settings = load_settings(data_dir / "failboard.toml")
    with TestClient(create_app(settings), follow_redirects=False) as client:
        found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', client.get("/login").text)
        assert found
        form = {"name": "admin", "password": password, "csrf_token": found.group(1)}
        answer = client.post("/login", data=form)
        if answer.status_code != 303:
            assert answer.status_code == 401, answer.text
            return False
        return client.get("/api/v1/projects").status_code == 200


def test_the_demo_prints_a_new_strong_password_each_run_and_only_it_signs_in(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "demo"
    first = _run_demo(data_dir)
    assert len(first) >= 16
    assert _signs_in(data_dir, first)
    assert not _signs_in(data_dir, first + "x")

    second = _run_demo(data_dir)
    assert len(second) >= 16 and second != first
    assert _signs_in(data_dir, second)
    # The run before's password no longer opens the dashboard.
    assert not _signs_in(data_dir, first)

"""A live failboard (uvicorn in a thread, real SQLite stores) and Debian's chromium.

The stores: the demo's three projects (seeded by the demo's own seeder), a hostile project whose
names, queues, payloads and messages try to run script, and a project that cannot be reached.
Outside CI a missing chromium skips these tests with how to install it; under CI=true they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from failboard.config import load_settings
from failboard.db import create_engine
from failboard.demo import seed_demo
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.web import create_app

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = os.environ.get("FAILBOARD_CHROMIUM", "/usr/lib/chromium/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

HOSTILE_NAME = "<script>alert('name')</script>"
HOSTILE_QUEUE = '"><img src=x onerror=alert(2)>'
HOSTILE_MESSAGE = "<img src=x onerror=alert('msg')> see javascript:alert(3)"


def _chromium() -> str:
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not found:
        message = (
            f"chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(or set FAILBOARD_CHROMIUM to a Chromium binary)"
        )
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": _chromium(), "args": ARGS}


def _hostile_project(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    laravel_schema.create_tables(engine)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    trace = "\n".join(f"#{i} /app/vendor/<b>x</b>.php({i}): call()" for i in range(10_000))
    rows = []
    specs: list[tuple[str, str, dict[str, Any], str]] = [
        (HOSTILE_NAME, "default", {"url": "javascript:alert(4)"}, HOSTILE_MESSAGE),
        ("App\\Jobs\\Plain", HOSTILE_QUEUE, {"html": "</pre><script>alert(5)</script>"}, "x"),
        ("App\\Jobs\\Huge", "default", {"blob": "A" * 5_000_000}, "payload too large"),
        ("App\\Jobs\\LongTrace", "default", {}, "deep stack"),
        ("App\\Jobs\\Bytes", "default", {}, "bytes follow"),
    ]
    for i, (name, queue, properties, message) in enumerate(specs):
        job_uuid = str(uuid.uuid4())
        exception = f"RuntimeException: {message} in /app/x.php:1\nStack trace:\n"
        exception += trace if name.endswith("LongTrace") else "#0 {main}"
        rows.append(
            {
                "uuid": job_uuid,
                "connection": "database",
                "queue": queue,
                "payload": laravel_payload.build_payload(
                    name, uuid=job_uuid, properties=properties
                ),
                "exception": exception,
                "failed_at": now - timedelta(minutes=i + 1),
            }
        )
    with engine.begin() as connection:
        laravel_schema.insert_failed_jobs(connection, rows)
    engine.dispose()
    # Invalid UTF-8, written as raw bytes the way a careless PHP app can store them.
    with sqlite3.connect(path) as raw:
        raw.execute(
            "UPDATE failed_jobs SET exception = CAST(? AS TEXT) WHERE queue = 'default' "
            "AND payload LIKE '%Bytes%'",
            (b"RuntimeException: bad \xff\xfe bytes <script>alert(6)</script>\n#0",),
        )
    return url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("live")
    config = seed_demo(folder / "demo")
    hostile = _hostile_project(folder / "hostile.db")
    text = config.read_text()
    text += f"""
[[projects]]
key = "hostile"
name = "Hostile <i>data</i>"
driver = "laravel"
url = "{hostile}"
agent = "inline"

[[projects]]
key = "down"
name = "Down Service"
driver = "laravel"
url = "postgresql+psycopg://nobody:wrong@127.0.0.1:1/nothing"
"""
    config.write_text(text)
    settings = load_settings(config)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="session")
def base_url(live_server: str) -> str:
    return live_server

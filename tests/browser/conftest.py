"""A live failboard (uvicorn in a thread, real SQLite stores) and Debian's chromium.

The stores: the demo's three projects (seeded by the demo's own seeder), a hostile project whose
names, queues, payloads and messages try to run script, and a project that cannot be reached.
Outside CI a missing chromium skips these tests with how to install it; under CI=true they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from failboard.board import Board
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

# The hostile corpus: what careless or malicious producers put in the fields a page shows.
SCRIPT = "<script>alert('script')</script>"
BREAKER = "\"'><img src=x onerror=alert('attr')>"
JS_URL = "javascript:alert('url')"
RTL = "invoice\u202egnp.exe"  # shows as "invoiceexe.png" unless kept as text
ZWJ = "pay\u200dpal\u200b.com"  # zero-width joiner and space
HOMOGLYPH = "\u0430dmin\u0455"  # Cyrillic a and dze: "admins" to the eye
COMBINING = "Z\u0351\u0364\u036ba\u0358\u0301l\u0489g\u0300o"  # stacked marks
LONG = "L" * 20_000  # one token, no break opportunity

HOSTILE_NAME = "<script>alert('name')</script>"
HOSTILE_QUEUE = "\"'><img src=x onerror=alert(2)>"
HOSTILE_MESSAGE = "<img src=x onerror=alert('msg')> see javascript:alert(3)"
HOSTILE_CONNECTION = "javascript:alert('connection')"
# PHP 5's "exception 'Class' with message …" takes any class text but a quote.
HOSTILE_CLASS = 'App\\Evil"><svg/onload=alert(8)><script>alert(11)</script>\u202eEvil'
HOSTILE_PROJECT = f"Hostile {SCRIPT}{BREAKER} {RTL}"
UNICODE_NAME = f"App\\Jobs\\{HOMOGLYPH}{ZWJ}"
UNICODE_MESSAGE = f"{COMBINING} {RTL} {ZWJ}"
LONG_NAME = "App\\Jobs\\" + "N" * 2_000
LONG_QUEUE = "q" * 500
BAD_BYTES_NAME = "App\\Jobs\\B\ufffdytes<script>alert(9)</script>"  # as shown: U+FFFD
ACTION_REQUESTER = f"{BREAKER}{SCRIPT}"
ACTION_CLAIMER = f"{JS_URL} {RTL}"
ACTION_ERROR = f"{SCRIPT} {BREAKER} {JS_URL} {COMBINING} " + "E" * 3_000
ACTION_QUEUE = f"{SCRIPT}{HOMOGLYPH}"


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


def _row(
    name: str,
    *,
    queue: str = "default",
    connection: str = "database",
    properties: dict[str, Any] | None = None,
    exception: str,
    minutes: int,
) -> dict[str, Any]:
    job_uuid = str(uuid.uuid4())
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    return {
        "uuid": job_uuid,
        "connection": connection,
        "queue": queue,
        "payload": laravel_payload.build_payload(name, uuid=job_uuid, properties=properties),
        "exception": exception,
        "failed_at": now - timedelta(minutes=minutes),
    }


def _php(message: str, klass: str = "RuntimeException", trace: str = "#0 {main}") -> str:
    return f"{klass}: {message} in /app/x.php:1\nStack trace:\n{trace}"


def _hostile_project(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    laravel_schema.create_tables(engine)
    trace = "\n".join(f"#{i} /app/vendor/<b>x</b>.php({i}): call()" for i in range(10_000))
    tricks = {"rtl": RTL, "zwj": ZWJ, "homoglyph": HOMOGLYPH, "combining": COMBINING}
    rows = [
        _row(
            HOSTILE_NAME,
            connection=HOSTILE_CONNECTION,
            properties={"url": "javascript:alert(4)", "breaker": BREAKER, "script": SCRIPT},
            exception=_php(HOSTILE_MESSAGE),
            minutes=1,
        ),
        _row(
            "App\\Jobs\\Plain",
            queue=HOSTILE_QUEUE,
            connection=BREAKER,
            properties={"html": "</pre><script>alert(5)</script>"},
            exception=f"exception '{HOSTILE_CLASS}' with message 'x {BREAKER}' in /app/x.php:1",
            minutes=2,
        ),
        _row(
            "App\\Jobs\\Huge",
            properties={"blob": "A" * 5_000_000},
            exception=_php("payload too large"),
            minutes=3,
        ),
        _row("App\\Jobs\\LongTrace", exception=_php("deep stack", trace=trace), minutes=4),
        _row("App\\Jobs\\Bytes", exception=_php("bytes follow"), minutes=5),
        _row(
            UNICODE_NAME,
            queue=RTL,
            connection=ZWJ,
            properties=tricks,
            exception=_php(UNICODE_MESSAGE),
            minutes=6,
        ),
        _row(
            LONG_NAME,
            queue=LONG_QUEUE,
            connection="c" * 300,
            properties={"note": LONG},
            exception=_php(f"long {LONG}", trace=f"#0 /app/{LONG}.php(1): call()"),
            minutes=7,
        ),
    ]
    with engine.begin() as connection:
        laravel_schema.insert_failed_jobs(connection, rows)
    engine.dispose()
    # Invalid UTF-8, written as raw bytes the way a careless PHP app can store them: in the
    # payload (the job's name comes from it), the exception, the queue and the connection.
    bytes_row = rows[4]
    payload = json.dumps(bytes_row["payload"]).encode()
    payload = payload.replace(
        b"App\\\\Jobs\\\\Bytes", b"App\\\\Jobs\\\\B\xffytes<script>alert(9)</script>"
    )
    assert b"\xff" in payload
    with sqlite3.connect(path) as raw:
        raw.execute(
            "UPDATE failed_jobs SET exception = CAST(? AS TEXT), payload = CAST(? AS TEXT), "
            "queue = CAST(? AS TEXT), connection = CAST(? AS TEXT) WHERE uuid = ?",
            (
                b"RuntimeException: bad \xff\xfe bytes <script>alert(6)</script>\n#0",
                payload,
                b"q\xfe<script>alert(10)</script>",
                b"c\xff\xfe",
                bytes_row["uuid"],
            ),
        )
    return url


def _hostile_actions(board: Board) -> None:
    """Actions whose requester, claimer, params and error are hostile, on the project that has
    no agent (they stay as they are made)."""
    spool = board.spool
    spool.submit("down", "retry_queue", {"queue": ACTION_QUEUE}, requested_by=ACTION_REQUESTER)
    spool.submit("down", "retry", {"job_ids": [SCRIPT]}, requested_by=ACTION_REQUESTER)
    (claimed,) = spool.claim("down", ACTION_CLAIMER, 1)
    assert claimed.claim_token is not None
    spool.fail(claimed.id, claimed.claim_token, ACTION_ERROR, retryable=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn in a thread on a free loopback port (its lifespan, so its inline
    agents, included); yields its URL and stops it after."""
    port = _free_port()
    # proxy_headers off, as `failboard serve` runs it: the trusted-proxy check sees the TCP peer.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("live")
    config = seed_demo(folder / "demo")
    hostile = _hostile_project(folder / "hostile.db")
    text = config.read_text()
    text += f"""
[[projects]]
key = "hostile"
name = {json.dumps(HOSTILE_PROJECT)}
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
    app = create_app(settings)
    _hostile_actions(app.state.board)
    with serve(app) as url:
        yield url


@pytest.fixture(scope="session")
def base_url(live_server: str) -> str:
    return live_server

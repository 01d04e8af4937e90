"""``failboard demo``: a whole failboard on SQLite, no servers needed.

Three Laravel-shaped projects (SQLite databases with ``failed_jobs`` and ``jobs`` tables), a
SQLite spool and inline agents. The failures are real: each demo job runs a handler that really
raises (a refused connection, a timeout, bad JSON, invalid UTF-8, a missing key...), and what
lands in ``failed_jobs`` is that exception's own traceback — only the failure times are spread
over the past week so that the charts and filters have something to show.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import sys
import tempfile
import traceback
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from failboard.config import load_settings
from failboard.db import create_engine
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.spool import Spool

__all__ = ["DEMO_PROJECTS", "run_demo", "seed_demo"]

Handler = Callable[[random.Random], None]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


def send_mail(rng: random.Random) -> None:
    # The "SMTP server" is a loopback port nobody listens on: a real ConnectionRefusedError.
    socket.create_connection(("127.0.0.1", _closed_port()), timeout=0.5).close()


def call_webhook(rng: random.Random) -> None:
    urllib.request.urlopen(
        f"http://127.0.0.1:{_closed_port()}/hooks/{rng.randrange(10**6)}", timeout=0.5
    )


def read_gateway(rng: random.Random) -> None:
    # A payment gateway that answers slower than we wait.
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(0.002)
        left.recv(1)


def parse_gateway_reply(rng: random.Random) -> None:
    json.loads(f'{{"status": "ok", "amount": {rng.randrange(100, 99999)}, "currency": "EU')


def reserve_stock(rng: random.Random) -> None:
    stock = {f"SKU-{n}": n for n in range(10)}
    stock[f"SKU-{rng.randrange(1000, 9999)}"] += 1


def average_rating(rng: random.Random) -> None:
    ratings: list[int] = []
    print(sum(ratings) / len(ratings))


def import_csv(rng: random.Random) -> None:
    row = f"name,price\nWidget {rng.randrange(100)},9.99\n".encode() + b"\xff\xfe\xfa broken"
    row.decode("utf-8")


def parse_quantity(rng: random.Random) -> None:
    int(f"{rng.randrange(1, 50)} pcs")


def load_export(rng: random.Random) -> None:
    folder = tempfile.gettempdir()
    with open(os.path.join(folder, f"failboard-demo-export-{uuid.uuid4()}.csv")) as handle:
        handle.read()


def validate_customer(rng: random.Random) -> None:
    # Hostile text on purpose: the dashboard must show it, never run it.
    name = rng.choice(
        ['<script>alert("pwned")</script>', '"><img src=x onerror=alert(1)>', "Zoë O'Brien \u202e"]
    )
    raise ValueError(f"Customer #{rng.randrange(1000, 9999)} has an invalid name: {name}")


@dataclass(frozen=True, slots=True)
class DemoJob:
    name: str
    queue: str
    handler: Handler
    weight: int = 1
    max_tries: int | None = 3


DEMO_PROJECTS: dict[str, tuple[str, list[DemoJob]]] = {
    "shop": (
        "Shop API",
        [
            DemoJob("App\\Jobs\\SendOrderConfirmation", "emails", send_mail, 5),
            DemoJob("App\\Jobs\\ReserveStock", "default", reserve_stock, 3),
            DemoJob("App\\Jobs\\ValidateCustomer", "default", validate_customer, 1, None),
            DemoJob("App\\Jobs\\CalculateRatings", "low", average_rating, 2),
        ],
    ),
    "billing": (
        "Billing",
        [
            DemoJob("App\\Jobs\\ChargeCard", "payments", read_gateway, 4, 5),
            DemoJob("App\\Jobs\\RecordGatewayReply", "payments", parse_gateway_reply, 3),
            DemoJob("App\\Jobs\\DeliverWebhook", "webhooks", call_webhook, 4, 10),
            DemoJob("App\\Jobs\\SendInvoice", "emails", send_mail, 2),
        ],
    ),
    "search": (
        "Search Indexer",
        [
            DemoJob("App\\Jobs\\ImportCatalogCsv", "imports", import_csv, 3, 1),
            DemoJob("App\\Jobs\\ParseStockFeed", "imports", parse_quantity, 2),
            DemoJob("App\\Jobs\\LoadNightlyExport", "indexing", load_export, 2),
        ],
    ),
}

FAILURES_PER_PROJECT = {"shop": 160, "billing": 140, "search": 100}


def _run(job: DemoJob, rng: random.Random) -> str:
    """Run the job's handler and return the traceback of the exception it really raised."""
    try:
        job.handler(rng)
    except Exception:
        return traceback.format_exc()
    raise AssertionError(f"demo job {job.name} did not fail")


def seed_project(url: str, project: str, count: int, now: datetime, seed: int = 7) -> None:
    """Fill one project database with ``count`` real failures spread over the past week."""
    rng = random.Random(f"{seed}:{project}")
    engine = create_engine(url)
    try:
        laravel_schema.create_tables(engine)
        jobs = DEMO_PROJECTS[project][1]
        weights = [job.weight for job in jobs]
        rows: list[dict[str, Any]] = []
        for _ in range(count):
            job = rng.choices(jobs, weights)[0]
            exception = _run(job, rng)
            failed_at = now - timedelta(seconds=rng.expovariate(1 / (36 * 3600)))
            failed_at = min(failed_at, now) - timedelta(seconds=1)
            job_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            rows.append(
                {
                    "uuid": job_uuid,
                    "connection": "database",
                    "queue": job.queue,
                    "payload": laravel_payload.build_payload(
                        job.name,
                        uuid=job_uuid,
                        max_tries=job.max_tries,
                        properties={"orderId": rng.randrange(1000, 99999)},
                        created_at=int(failed_at.timestamp()) - rng.randrange(1, 600),
                    ),
                    "exception": exception,
                    "failed_at": failed_at.replace(tzinfo=None, microsecond=0),
                }
            )
        rows.sort(key=lambda row: row["failed_at"])
        with engine.begin() as connection:
            laravel_schema.insert_failed_jobs(connection, rows)
    finally:
        engine.dispose()


CONFIG = """\
# The demo's configuration, written by `failboard demo`. Try the CLI with it:
#   export FAILBOARD_CONFIG={config}
[spool]
url = "sqlite:///spool.db"

[server]
host = "{host}"
port = {port}
{server}{projects}{users}"""

# `failboard demo` signs its one user in with a password made for that run (printed at start).
SIGN_IN = """secret_key = "{secret}"
"""
USER = """
[[users]]
name = "admin"
password_hash = "{password_hash}"
role = "admin"
projects = ["*"]
"""

PROJECT = """
[[projects]]
key = "{key}"
name = "{name}"
driver = "laravel"
url = "sqlite:///{key}.db"
agent = "inline"
"""


def seed_demo(
    data_dir: Path, host: str = "127.0.0.1", port: int = 8000, admin_password: str | None = None
) -> Path:
    """Create (once) the demo's databases and config in ``data_dir``; return the config path.
    With ``admin_password``, the config has a user ``admin`` with that password (and a fresh
    secret key); without, no sign-in (a loopback tool, as the tests use it)."""
    from failboard.auth import hash_password

    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "failboard.toml"
    now = datetime.now(UTC)
    for key, count in FAILURES_PER_PROJECT.items():
        db = data_dir / f"{key}.db"
        if not db.exists():
            seed_project(f"sqlite:///{db}", key, count, now)
    projects = "".join(
        PROJECT.format(key=key, name=name) for key, (name, _jobs) in DEMO_PROJECTS.items()
    )
    server = users = ""
    if admin_password is not None:
        server = SIGN_IN.format(secret=secrets.token_urlsafe(32))
        users = USER.format(password_hash=hash_password(admin_password))
    config.touch(mode=0o600)
    config.chmod(0o600)  # it holds the secret key and a password hash
    config.write_text(
        CONFIG.format(
            config=config.resolve(),
            host=host,
            port=port,
            server=server,
            projects=projects,
            users=users,
        )
    )
    settings = load_settings(config)
    spool = Spool.from_settings(settings.spool)
    try:
        spool.migrate()
    finally:
        spool.close()
    return config


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _command() -> str:
    """How to call this very failboard from another terminal: its own script when it is not on
    the PATH (``make demo`` runs ``.venv/bin/failboard``)."""
    script = Path(sys.argv[0])
    if script.name == "failboard" and shutil.which("failboard") != str(script.resolve()):
        try:
            return str(script.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(script.resolve())
    return "failboard"


def run_demo(data_dir: str, host: str, port: int, serve: bool = True) -> None:
    from rich.console import Console

    from failboard.cli.ops import run_server

    console = Console(highlight=False)
    port = port or _free_port(host)
    folder = Path(data_dir).resolve()
    password = secrets.token_urlsafe(12)
    config = seed_demo(folder, host, port, admin_password=password)
    settings = load_settings(config)
    total = 0
    for project in settings.projects:
        engine = create_engine(project.url)
        with engine.connect() as connection:
            total += connection.execute(sa.text("SELECT count(*) FROM failed_jobs")).scalar_one()
        engine.dispose()
    url = f"http://{host}:{port}/"
    console.print(f"[bold]failboard demo[/] — {total} failed jobs in 3 projects, in {folder}")
    console.print(f"  dashboard:  [bold cyan]{url}[/]   (API docs at {url}docs)")
    console.print(f"  sign in:    admin / [bold]{password}[/]   (a new password each run)")
    console.print(f"  CLI:        export FAILBOARD_CONFIG={config}")
    command = _command()
    console.print(f"              {command} jobs list --limit 5")
    console.print(f"              {command} retry shop <ID> --wait")
    console.print("  agents:     inline (inside this process), through the spool")
    if serve:
        run_server(settings, host, port)

"""What the fault tests share: seeding a Laravel store, agent processes, and the ledger.

Agents run as real ``failboard agent`` processes (as in production) so that ``kill -9`` and
SIGTERM hit the real signal handling and the real connection teardown. The ledger reads the
project's own tables afterwards: the ``jobs`` table is the record of every push (each retried
job lands there once per push, its payload carrying the job's uuid), ``failed_jobs`` what is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from failboard.db import create_engine
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.spool import Spool
from tests.faults.proxy import Proxy

__all__ = [
    "AgentProcess",
    "Ledger",
    "ProxyOn",
    "agent_config",
    "agents",
    "ledger",
    "refused_port",
    "seed",
    "spool_for",
    "wait_until",
]

PROJECT = "shop"


def seed(url: str, count: int) -> list[str]:
    """``count`` failed jobs of the database queue in a new Laravel ``failed_jobs`` table (and
    an empty ``jobs`` table); their uuids."""
    engine = create_engine(url)
    try:
        laravel_schema.create_tables(engine)
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        ids = [str(uuid.uuid4()) for _ in range(count)]
        rows = [
            {
                "uuid": job_id,
                "connection": "database",
                "queue": "default",
                "payload": laravel_payload.build_payload("App\\Jobs\\Charge", uuid=job_id),
                "exception": "RuntimeException: card declined in /app/Charge.php:42\n#0 {main}",
                "failed_at": now - timedelta(seconds=i),
            }
            for i, job_id in enumerate(ids)
        ]
        with engine.begin() as connection:
            laravel_schema.insert_failed_jobs(connection, rows)
    finally:
        engine.dispose()
    return ids


@dataclass(frozen=True)
class Ledger:
    """Every push the project's queue received, and the failure records still there."""

    pushed: Counter[str]
    still_failed: set[str]

    def duplicates(self) -> dict[str, int]:
        return {job: n for job, n in self.pushed.items() if n > 1}

    def lost(self, ids: list[str]) -> list[str]:
        """Jobs neither pushed nor still recorded as failed: gone without a trace."""
        return [job for job in ids if job not in self.pushed and job not in self.still_failed]


def ledger(url: str) -> Ledger:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            payloads = connection.execute(sa.text("SELECT payload FROM jobs")).scalars().all()
            failed = connection.execute(sa.text("SELECT uuid FROM failed_jobs")).scalars().all()
    finally:
        engine.dispose()
    return Ledger(Counter(json.loads(p)["uuid"] for p in payloads), {str(f) for f in failed})


def agent_config(
    folder: Path,
    *,
    spool_url: str,
    project_url: str,
    lease_seconds: int = 5,
    max_attempts: int = 3,
    retry_delay_seconds: int = 0,
    batch_size: int = 200,
    limit: int = 10,
    grace_seconds: float = 5.0,
    name: str = "failboard.toml",
) -> Path:
    """A failboard.toml for the agents of project ``shop``."""
    file = folder / name
    file.write_text(
        f'[spool]\nurl = "{spool_url}"\nlease_seconds = {lease_seconds}\n'
        f"max_attempts = {max_attempts}\nretry_delay_seconds = {retry_delay_seconds}\n"
        f"[agent]\nbatch_size = {batch_size}\nlimit = {limit}\n"
        f"grace_seconds = {grace_seconds}\ninterval_seconds = 0.2\n"
        f'[[projects]]\nkey = "{PROJECT}"\ndriver = "laravel"\nurl = "{project_url}"\n'
    )
    return file


@dataclass
class AgentProcess:
    """One ``failboard agent`` process, its output in a log file next to the config."""

    config: Path
    index: int
    process: subprocess.Popen[bytes] = field(init=False)
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.config.parent / f"agent-{self.index}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "failboard",
                    "agent",
                    "--project",
                    PROJECT,
                    "--config",
                    str(self.config),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def name_suffix(self) -> str:
        """The end of the name it claims under (``host:pid``)."""
        return f":{self.pid}"

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def agents(config: Path, count: int, first_index: int = 0) -> Iterator[list[AgentProcess]]:
    """``count`` agents; whatever is still running at the end is killed (never left behind)."""
    started = [AgentProcess(config, first_index + i) for i in range(count)]
    try:
        yield started
    finally:
        for agent in started:
            if agent.alive():
                agent.process.kill()
                agent.process.wait(timeout=10)


def spool_for(url: str, lease_seconds: int = 5, max_attempts: int = 3) -> Spool:
    """The test's own view of the spool (migrated), with the agents' settings."""
    spool = Spool(url, lease_seconds=lease_seconds, max_attempts=max_attempts)
    spool.migrate()
    return spool


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.1
) -> float:
    """Poll ``predicate`` until true; seconds it took. AssertionError naming ``what`` after
    ``timeout``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def refused_port() -> socket.socket:
    """A loopback socket bound to a port but not listening: connecting there is refused, as to
    a stopped server. The port stays ours (no other socket can take it) until :class:`ProxyOn`
    listens on it, the server coming back."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ProxyOn(Proxy):
    """A :class:`Proxy` that listens on a :func:`refused_port`: the server comes back where its
    clients were told to look."""

    def __init__(self, bound: socket.socket, upstream_host: str, upstream_port: int) -> None:
        super().__init__(upstream_host, upstream_port)
        # Proxy listens on a port of its own; swap in the bound one before start() reads it.
        self._listener.close()
        bound.listen()
        bound.settimeout(0.1)
        self._listener = bound
        self.port = bound.getsockname()[1]

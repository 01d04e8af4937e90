"""What the real-worker tests of the recorder engines (Huey, arq, taskiq) share: a project whose
failures table is on a fresh real database, its config, a Board on it (in-process: polling the
table through the failboard CLI would cost a second and a half of imports per look), the CLI and
the agent as subprocesses, a worker subprocess with its log, and waiting for something to happen.

Each engine's tests pass the environment its task module reads at import (queue names, the
failures database, a marker folder where tasks look for a "fixed" file and note what they ran).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failboard.board import Board
from failboard.config import load_settings
from failboard.db import create_engine
from failboard.failures import create_failures_table
from failboard.models import JobQuery
from tests.services import fresh_database

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Project:
    """One test's project: the database of its failures table (and spool), config, markers."""

    key: str
    db_url: str
    markers: Path
    config: Path
    board: Board
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "FB_FAILURES": self.db_url,
            "FB_MARKERS": str(self.markers),
            **self.extra_env,
        }

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=timeout
        )

    def cli(self, *args: str) -> Any:
        done = self.run(sys.executable, "-m", "failboard", *args, "--config", str(self.config))
        assert done.returncode == 0, done.stderr + done.stdout
        return json.loads(done.stdout) if "--json" in args else done.stdout

    def python(self, code: str) -> str:
        """Run ``code`` in a fresh interpreter with the project's environment; its stdout."""
        done = self.run(sys.executable, "-c", code)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout.strip()

    def jobs(self) -> dict[str, dict[str, Any]]:
        """What ``failboard jobs list --json`` shows, by job id."""
        return {job["id"]: job for job in self.cli("jobs", "list", "--json")}

    def job_ids(self) -> set[str]:
        """The ids of the project's failed jobs, as the Board reads them (cheap, in-process)."""
        page = self.board.list_jobs(JobQuery(limit=100))
        return {job.id for job in page.items}

    def detail(self, job_id: str) -> dict[str, Any]:
        """The job as the Board shows it (``jobs show --json`` without the CLI's start-up)."""
        found: dict[str, Any] = self.board.get_job(self.key, job_id).model_dump(mode="json")
        return found

    def listed(self, *job_ids: str) -> bool:
        """Whether all of ``job_ids`` are listed (for :func:`wait`)."""
        return set(job_ids) <= self.job_ids()

    def retry_through_agent(self, *job_ids: str) -> dict[str, Any]:
        """A retry into the spool (as the dashboard's button writes it), then one pass of the
        project's agent, a subprocess that imports the project's app; the action's result."""
        action = self.board.submit(self.key, "retry", {"job_ids": list(job_ids)})
        agent = self.run(
            sys.executable,
            "-m",
            "failboard",
            "agent",
            "--project",
            self.key,
            "--once",
            "--config",
            str(self.config),
        )
        assert agent.returncode == 0, agent.stderr + agent.stdout
        done = self.board.action(action.id)
        assert done.result is not None, (done, agent.stderr)
        return done.result.model_dump(mode="json")

    def make_failures_table(self) -> None:
        """What ``failboard migrate --failures`` does for this project (tested with Celery)."""
        engine = create_engine(self.db_url)
        try:
            create_failures_table(engine)
        finally:
            engine.dispose()

    @contextmanager
    def worker(self, name: str, argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
        """A worker subprocess (its output in ``<name>.log``), stopped with SIGTERM after."""
        with self.log_path(name).open("wb") as output:
            process = subprocess.Popen(
                argv, stdout=output, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT
            )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_path(self, name: str) -> Path:
        return self.markers.parent / f"{name}.log"

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def ran(self) -> list[dict[str, Any]]:
        """What the tasks noted they ran successfully (``done-*.json``), oldest first."""
        found = sorted(self.markers.glob("done-*.json"), key=lambda p: p.stat().st_mtime)
        return [json.loads(path.read_text()) for path in found]


@contextmanager
def recorder_project(
    tmp_path: Path, driver: str, app: str, kind: str = "postgres", key: str = "reports", **env: str
) -> Iterator[Project]:
    """A project of ``driver`` whose spool and failures table are on a fresh ``kind`` database;
    ``env`` is added to the workers', the CLI's and the agent's environment."""
    with fresh_database(kind) as db_url:
        markers = tmp_path / "markers"
        markers.mkdir()
        config = tmp_path / "failboard.toml"
        config.write_text(
            f'[spool]\nurl = "{db_url}"\n'
            f'[[projects]]\nkey = "{key}"\ndriver = "{driver}"\nurl = "{db_url}"\n'
            f'app = "{app}"\n'
        )
        board = Board(load_settings(config))
        try:
            board.spool.migrate()
            yield Project(key, db_url, markers, config, board, dict(env))
        finally:
            board.close()


def wait(
    what: str, probe: Callable[[], Any], timeout: float = 30.0, log: Callable[[], str] = str
) -> Any:
    """``probe()``'s first truthy value, polled until ``timeout``; ``log()`` (a worker's log)
    is shown when it never comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log()}")


def note_done(task: str, task_id: str, **extra: Any) -> None:
    """Called by a task that succeeded: what it ran, for the test to read back."""
    folder = Path(os.environ["FB_MARKERS"])
    (folder / f"done-{task_id}.json").write_text(json.dumps({"task": task, "id": task_id, **extra}))


def fixed() -> bool:
    """Whether the test has "fixed" what made the tasks fail."""
    return (Path(os.environ["FB_MARKERS"]) / "fixed").exists()

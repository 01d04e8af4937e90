"""failboard as real processes: the dashboard under uvicorn, agents, and what they cost.

Everything runs through ``python -m failboard`` with a config file, exactly as an operator starts
it, so the figures include what a real deployment pays (imports, pools, logging).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

from bench.services import DATA_DIR

__all__ = [
    "Measured",
    "Served",
    "free_port",
    "run_measured",
    "serve",
    "served",
    "start",
    "stop",
    "write_config",
]

LOG_DIR = DATA_DIR / "logs"


def write_config(
    path: Path,
    spool_url: str,
    projects: Sequence[tuple[str, str]],
    *,
    server: str = "",
    agent: str = "",
) -> Path:
    """A failboard.toml with ``projects`` as (key, store url) Laravel projects."""
    text = f'[spool]\nurl = "{spool_url}"\n'
    if server:
        text += f"\n[server]\n{server}\n"
    if agent:
        text += f"\n[agent]\n{agent}\n"
    for key, url in projects:
        text += f'\n[[projects]]\nkey = "{key}"\ndriver = "laravel"\nurl = "{url}"\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: Sequence[str], log_name: str) -> subprocess.Popen[bytes]:
    """``python -m failboard ARGS``, its output in bench/.data/logs/LOG_NAME."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (LOG_DIR / log_name).open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "failboard", *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM, then SIGKILL if it does not stop in time; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@dataclass(frozen=True, slots=True)
class Measured:
    exit_code: int
    wall_seconds: float
    peak_rss_bytes: int
    cpu_seconds: float  # user + system of the process itself: what contention does not change


def _high_water(pid: int) -> int | None:
    """The process's peak RSS so far (``VmHWM``), or None once it has exited."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def run_measured(command: Sequence[str], log_name: str, timeout: float = 900.0) -> Measured:
    """Run ``command`` to its end; its wall time and the peak RSS of that one process.

    The peak is the kernel's own high-water mark (``VmHWM``), read every 10 ms while the process
    runs; the last reading before it exits is its peak to within those 10 ms. Not ``ru_maxrss``:
    on Linux a child's ``ru_maxrss`` starts from the RSS of the parent that spawned it (the
    memory it had before ``exec``), so a child of this bench, which holds datasets in memory,
    would be charged for them.
    """
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with (LOG_DIR / log_name).open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    deadline = started + timeout
    peak = 0
    while True:
        high = _high_water(process.pid)
        if high is not None:
            peak = max(peak, high)
        # wait4 rather than poll(): it also gives the child's own CPU time.
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.01)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Measured(process.returncode, wall, peak, usage.ru_utime + usage.ru_stime)


@dataclass(frozen=True, slots=True)
class Served:
    base: str  # http://127.0.0.1:PORT
    pid: int  # the server process, for its RSS


@contextmanager
def served(config: Path, log_name: str = "serve.log") -> Iterator[Served]:
    """``failboard serve`` on a free loopback port; yields its URL and pid once it answers."""
    port = free_port()
    process = start(
        ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)], log_name
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"failboard serve exited; see {LOG_DIR / log_name}")
            try:
                if httpx2.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"failboard serve did not answer; see {LOG_DIR / log_name}")
            time.sleep(0.1)
        yield Served(base, process.pid)
    finally:
        stop(process)


@contextmanager
def serve(config: Path, log_name: str = "serve.log") -> Iterator[str]:
    """:func:`served`, yielding only its base URL."""
    with served(config, log_name) as server:
        yield server.base

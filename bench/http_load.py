"""HTTP load: N concurrent clients on one URL for S seconds — wrk where it is installed, and
this module's own generator (asyncio + httpx).

Runs as its own process (``python -m bench.http_load URL --clients 50 --seconds 30``) so that its
CPU is not the dashboard's; it prints one JSON object: requests, errors, throughput, latency
percentiles, and its own CPU time — on 2 cores the generator competes with the server for CPU,
and the figure says how much. Each client sends its next request as soon as the previous answer
is read (a closed loop, like wrk): throughput is what the server sustains, latency what each
client waits at that throughput.

The own generator costs more CPU per request than the dashboard answering it (~6 ms against
~4-7 ms for the HTML page), so on 2 cores it measures itself as much as the server: at ~150
req/s it takes a whole core. :func:`load_wrk` runs wrk (C, epoll; ``apt-get install wrk``), the
tool issue #3 names, with the same closed loop of N connections and the same report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx2

from bench.results import percentile

__all__ = ["load", "load_wrk"]

_WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


async def _client(
    client: httpx2.AsyncClient, url: str, until: float, latencies: list[float], errors: list[str]
) -> None:
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            response = await client.get(url)
            await response.aread()
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}")
                continue
        except httpx2.HTTPError as exc:
            errors.append(type(exc).__name__)
            continue
        latencies.append(time.perf_counter() - started)


async def _run(url: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(limits=limits, timeout=60.0) as client:
        await client.get(url)  # one warm request, not counted
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(
            *(_client(client, url, until, latencies, errors) for _ in range(clients))
        )
        wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "url": url,
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "rps": len(latencies) / wall if wall else 0.0,
        "p50_s": percentile(latencies, 0.50) if latencies else None,
        "p95_s": percentile(latencies, 0.95) if latencies else None,
        "p99_s": percentile(latencies, 0.99) if latencies else None,
        "max_s": max(latencies) if latencies else None,
        "generator_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
    }


def load(url: str, clients: int = 50, seconds: float = 30.0) -> dict[str, Any]:
    """Run the generator in a child process; its JSON report."""
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.http_load",
            url,
            "--clients",
            str(clients),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 180,
    ).stdout
    report: dict[str, Any] = json.loads(output)
    return report


def load_wrk(url: str, clients: int = 50, seconds: float = 30.0) -> dict[str, Any] | None:
    """The same load with wrk (one thread, ``clients`` connections, a 60 s request timeout so
    that a slow answer is timed, not dropped); None when wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_WRK_REPORT)
        script.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        command = [wrk, "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "60s"]
        output = subprocess.run(
            [*command, "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 120,
        ).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    raw = json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
    wall = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "url": url,
        "tool": "wrk",
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": raw["requests"],
        "errors": errors,
        "error_kinds": [k for k in ("connect", "read", "write", "status", "timeout") if raw[k]],
        "rps": raw["requests"] / wall if wall else 0.0,
        "p50_s": raw["p50_us"] / 1e6,
        "p95_s": raw["p95_us"] / 1e6,
        "p99_s": raw["p99_us"] / 1e6,
        "max_s": raw["max_us"] / 1e6,
        "generator_cpu_s": round(cpu, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_load")
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.url, args.clients, args.seconds))))


if __name__ == "__main__":
    main()

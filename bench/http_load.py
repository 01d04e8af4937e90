"""An HTTP load generator: N concurrent clients on one URL for S seconds (asyncio + httpx).

Runs as its own process (``python -m bench.http_load URL --clients 50 --seconds 30``) so that its
CPU is not the dashboard's; it prints one JSON object: requests, errors, throughput, latency
percentiles, and its own CPU time — on 2 cores the generator competes with the server for CPU,
and the figure says how much. Each client sends its next request as soon as the previous answer
is read (a closed loop, like wrk): throughput is what the server sustains, latency what each
client waits at that throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from typing import Any

import httpx

from bench.results import percentile

__all__ = ["load"]


async def _client(
    client: httpx.AsyncClient, url: str, until: float, latencies: list[float], errors: list[str]
) -> None:
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            response = await client.get(url)
            await response.aread()
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}")
                continue
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
            continue
        latencies.append(time.perf_counter() - started)


async def _run(url: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_load")
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.url, args.clients, args.seconds))))


if __name__ == "__main__":
    main()

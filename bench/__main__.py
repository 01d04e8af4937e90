"""``python -m bench``: every benchmark, then ONE table of what was measured.

    python -m bench                      # everything (make bench); datasets are reused
    python -m bench --only listing       # one part: listing, retry_queue, spool (repeatable)
    python -m bench --quick              # a smoke run on 10,000-row datasets

The figures also go to bench/results/latest.json (gitignored). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console

from bench import (
    celery_targets,
    dramatiq_xq,
    listing,
    retry_drivers,
    retry_queue,
    rq_peer,
    spool_drain,
)
from bench.results import Result, console, log, render, save
from bench.services import MYSQL_URL, POSTGRES_URL

PARTS: dict[str, Callable[[argparse.Namespace], list[Result]]] = {
    "listing": lambda args: listing.run(args.quick),
    "retry_queue": lambda args: retry_queue.run(args.quick, args.peer_rows),
    "spool": lambda args: spool_drain.run(args.quick),
    "rq_peer": lambda args: rq_peer.run(args.quick),
    "celery": lambda args: celery_targets.run(args.quick),
    "retry_drivers": lambda args: retry_drivers.run(args.quick, args.peer_rows),
    "dramatiq": lambda args: dramatiq_xq.run(args.quick),
}
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
PEER_ROWS = 20_000


def _peer_rows(text: str) -> int | None:
    if text == "all":
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1, or 'all'")
    return value


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _server_version(url: str) -> str:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return str(connection.exec_driver_sql("SELECT version()").scalar_one()).split(" on ")[0]
    except sa.exc.SQLAlchemyError as exc:
        return f"unreachable ({type(exc).__name__})"
    finally:
        engine.dispose()


def _code() -> str:
    """Which failboard was measured: the commit, and where the package was imported from (the
    tree may be a snapshot put first on PYTHONPATH while others edit the checkout)."""
    import failboard

    where = Path(failboard.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"{commit} ({where})"


class LoadWatch(threading.Thread):
    """Samples the 1-minute load average while the bench runs: the box may be shared, and a
    figure taken at load 5 on 2 cores is not one taken at load 1."""

    def __init__(self, every: float = 5.0) -> None:
        super().__init__(name="bench-load", daemon=True)
        self.every = every
        self.samples: list[float] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict[str, float]:
        self._done.set()
        self.join()
        values = self.samples or [os.getloadavg()[0]]
        return {"mean": round(sum(values) / len(values), 2), "max": round(max(values), 2)}


def machine() -> dict[str, Any]:
    return {
        "code": _code(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(_ram_gb(), 1),
        "python": platform.python_version(),
        "postgres": _server_version(POSTGRES_URL),
        "mariadb": _server_version(MYSQL_URL),
        "sqlite": sqlite3.sqlite_version,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(PARTS),
        help="run only this part (repeat for several)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 10,000-row datasets, short sampling"
    )
    parser.add_argument(
        "--peer-rows",
        type=_peer_rows,
        default=PEER_ROWS,
        metavar="N|all",
        help=f"stop the peer's row-by-row loop after N jobs and extrapolate to the whole table "
        f"(default {PEER_ROWS:,}: its loop alone takes over 3 minutes at 100,000; 'all' runs it "
        "through)",
    )
    args = parser.parse_args()
    meta = machine()
    log(
        f"{meta['cpu']}, {meta['cores']} cores, {meta['ram_gb']} GB; {meta['postgres']}; "
        f"MariaDB {meta['mariadb']}; SQLite {meta['sqlite']}; failboard {meta['code']}"
    )
    started = time.perf_counter()
    watch = LoadWatch()
    watch.start()
    results: list[Result] = []
    for name in args.only or list(PARTS):
        part_started = time.perf_counter()
        results += PARTS[name](args)
        log(f"{name}: {time.perf_counter() - part_started:.0f} s")
    meta["total_seconds"] = round(time.perf_counter() - started, 1)
    meta["load_average"] = watch.stop()
    meta["quick"] = args.quick
    save(results, RESULTS, meta)
    load = meta["load_average"]
    title = (
        f"failboard benchmarks — {meta['date'][:10]}, {meta['cpu']}, {meta['cores']} cores, "
        f"{meta['ram_gb']} GB; load average {load['mean']:.1f} (max {load['max']:.1f}); "
        f"{meta['total_seconds']:.0f} s" + (" (--quick)" if args.quick else "")
    )
    Console(width=max(160, console.width)).print(render(results, title))
    missed = [result for result in results if result.met is False]
    if missed:
        console.print(f"[yellow]{len(missed)} target(s) missed; see docs/benchmarks.md[/]")


if __name__ == "__main__":
    main()

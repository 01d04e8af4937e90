"""Target 1: the first page across three projects holding 300,000 failed jobs.

One Laravel ``failed_jobs`` table per project — PostgreSQL, MariaDB, SQLite, 100,000 rows each —
read through ``GET /api/v1/jobs`` of the real dashboard (``failboard serve`` under uvicorn, in its
own process), timed as real HTTP requests with httpx after a warm-up. Each case runs twice: with
the indexes Laravel 13's migration makes (``connection, queue, failed_at``) and with an extra
index on ``failed_at``, since every page is ordered by it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx

from bench.data import COMMON_TERM, RARE_TERM, Dataset, ensure_dataset, set_failed_at_index
from bench.procs import serve, write_config
from bench.results import Result, log, ms, summary
from bench.services import DATA_DIR, Kind, sqlite_url
from failboard.spool import Spool

__all__ = ["run"]

TARGET = 0.100
PAGE = 50
STORE_TIMEOUT = 60
"""The bench's ``store_timeout_seconds``: long enough that a slow store is timed, not cut off
(the default of 2 s would report it as a per-project error instead)."""

STORES: tuple[tuple[str, Kind, int], ...] = (
    ("pg", "postgres", 100),
    ("maria", "mysql", 101),
    ("lite", "sqlite", 102),
)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    params: dict[str, str] = field(default_factory=dict)
    page: int = 1
    min_items: int = PAGE  # fewer rows than this means the answer is wrong, not fast


CASES = (
    Case("first page"),
    Case("queue=billing", {"queue": "billing"}),
    Case(f"q={COMMON_TERM}", {"q": COMMON_TERM}),
    Case("q=<rare e-mail>", {"q": RARE_TERM}, min_items=3),
    Case("10th page (cursors)", page=10),
)


@dataclass(frozen=True, slots=True)
class Budget:
    """How long to keep sampling one case.

    A fast case gets ``warmup`` requests, then at least ``min_samples`` and at most
    ``max_samples``, stopping once ``seconds`` are spent. A case whose first request takes more
    than ``SLOW`` seconds scans a whole table: its first request is as warm as any (the pools are
    open, the time is the scan), so it counts, and only ``slow_samples`` are taken in all —
    sampling those like the fast ones would eat the 15 minutes the whole bench may take.
    """

    warmup: int
    min_samples: int
    max_samples: int
    seconds: float
    slow_samples: int


SLOW = 1.0
FULL = Budget(warmup=3, min_samples=5, max_samples=40, seconds=6.0, slow_samples=3)
QUICK = Budget(warmup=1, min_samples=3, max_samples=10, seconds=1.5, slow_samples=2)
PER_STORE = Budget(warmup=1, min_samples=3, max_samples=10, seconds=1.5, slow_samples=1)


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _sample(call: Callable[[], object], budget: Budget) -> list[float]:
    first = _timed(call)
    if first > SLOW:
        return [first] + [_timed(call) for _ in range(budget.slow_samples - 1)]
    for _ in range(budget.warmup - 1):
        call()
    samples: list[float] = []
    while len(samples) < budget.max_samples:
        samples.append(_timed(call))
        if len(samples) >= budget.min_samples and sum(samples) >= budget.seconds:
            break
    return samples


def _get(client: httpx.Client, params: dict[str, str], min_items: int) -> dict[str, Any]:
    response = client.get("/api/v1/jobs", params=params)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    if body["errors"]:
        raise RuntimeError(f"projects answered with errors: {body['errors']}")
    if len(body["items"]) < min_items:
        raise RuntimeError(f"only {len(body['items'])} rows for {params}")
    return body


def _warm_up(client: httpx.Client) -> None:
    """Open every project's pool and reflect its table before the first timed request (a job
    that does not exist is looked up by its unique key: cheap, with or without our index)."""
    for key, _kind, _seed in STORES:
        for _ in range(2):
            response = client.get(f"/api/v1/jobs/{key}/warm-up")
            if response.status_code != 404:
                raise RuntimeError(f"warm-up of {key}: HTTP {response.status_code}")


def _page_params(client: httpx.Client, case: Case) -> dict[str, str]:
    """The query string of the case's page: the pages before it are followed by their cursors."""
    params = {**case.params, "limit": str(PAGE)}
    for _ in range(case.page - 1):
        body = _get(client, params, PAGE)
        params = {**case.params, "limit": str(PAGE), "cursor": body["next_cursor"]}
    return params


def _measure(
    client: httpx.Client, case: Case, params: dict[str, str], budget: Budget
) -> tuple[list[float], dict[str, list[float]]]:
    """Samples through all three projects, then per project (which store costs what)."""
    merged = _sample(lambda: _get(client, params, case.min_items), budget)
    per_store: dict[str, list[float]] = {}
    for key, _kind, _seed in STORES:
        one = {**params, "project": key}
        per_store[key] = _sample(partial(_get, client, one, 1), PER_STORE)
    return merged, per_store


def _datasets(rows: int) -> list[Dataset]:
    name = f"fb_bench_laravel_{rows // 1000}k"
    return [ensure_dataset(kind, name, rows, seed=seed, log=log) for _key, kind, seed in STORES]


def run(quick: bool = False) -> list[Result]:
    rows = 10_000 if quick else 100_000
    datasets = _datasets(rows)
    spool_url = sqlite_url("fb_bench_listing_spool")
    with Spool(spool_url) as spool:
        spool.migrate()
    config = write_config(
        DATA_DIR / "listing.toml",
        spool_url,
        [(key, dataset.url) for (key, _kind, _seed), dataset in zip(STORES, datasets, strict=True)],
        server=f"store_timeout_seconds = {STORE_TIMEOUT}",
    )
    budget = QUICK if quick else FULL
    results: list[Result] = []
    pages: dict[str, dict[str, str]] = {}
    # With the index first: following nine cursors to the 10th page is quick there, and the
    # cursors (positions in the data, not in an index) serve the run without it as well.
    for indexed in (True, False):
        variant = "+ failed_at index" if indexed else "Laravel 13 indexes"
        log(f"listing: {variant}")
        for dataset in datasets:
            set_failed_at_index(dataset.url, indexed)
        with (
            serve(config, f"serve-listing-{int(indexed)}.log") as base,
            httpx.Client(base_url=base, timeout=STORE_TIMEOUT + 10) as client,
        ):
            _warm_up(client)
            for case in CASES:
                if case.name not in pages:
                    pages[case.name] = _page_params(client, case)
                params = pages[case.name]
                merged, per_store = _measure(client, case, params, budget)
                results.append(_result(case, indexed, merged, per_store, rows))
    return results


def _result(
    case: Case, indexed: bool, merged: list[float], per_store: dict[str, list[float]], rows: int
) -> Result:
    variant = "+ failed_at index" if indexed else "Laravel 13 indexes"
    median, p95 = summary(merged)
    stores = " · ".join(f"{key} {ms(summary(samples)[0])}" for key, samples in per_store.items())
    log(f"  {case.name}: median {ms(median)}, p95 {ms(p95)}, n={len(merged)} ({stores})")
    return Result(
        bench=f"listing {rows * len(STORES):,} rows / {len(STORES)} projects",
        case=f"{case.name} · {variant}",
        measured=f"{ms(median)} (p95 {ms(p95)})",
        target="median < 100 ms",
        met=median < TARGET,
        notes=f"n={len(merged)}; per project (median): {stores}",
        data={
            "case": case.name,
            "failed_at_index": indexed,
            "median_s": median,
            "p95_s": p95,
            "samples_s": merged,
            "per_store_median_s": {key: summary(samples)[0] for key, samples in per_store.items()},
            "rows_per_store": rows,
        },
    )

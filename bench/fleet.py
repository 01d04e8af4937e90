"""Ten projects on four kinds of store, at three sizes: the data the listing benchmarks read.

One fleet is ten projects — 4 Laravel on PostgreSQL, 3 on MariaDB, 2 on SQLite and 1 RQ on Redis
— with the same number of failed jobs each. It exists at three sizes, 10 x 1,000, 10 x 10,000 and
10 x 100,000 (10k, 100k and 1M in all), so the scaling curve compares the same ten stores, the
same queries and the same row shapes, only more of them: 1.11M rows to build, 11 % more than the
1M alone. The mix follows what failboard is pointed at (Laravel's own default store first, on the
two server databases; SQLite for small apps; RQ as the Redis-native representative); MariaDB gets
three, not four, because it stores ~12 KB per row and is the slowest to fill.

Laravel rows are ``bench.data``'s ``large`` rows (2-20 KB payloads, 23-25-frame PHP traces);
RQ jobs are ``bench.rqdata``'s (2-20 KB pickled calls, 14-20-frame Python tracebacks). Every
Laravel table gets the ``failed_at`` index docs/benchmarks.md recommends (the run without it is
the 300,000-row comparison of the earlier run, not repeated at 1M: each page would scan GBs).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Literal

from bench.data import ensure_dataset, set_failed_at_index
from bench.results import log
from bench.rqdata import ensure_rq_dataset

__all__ = ["PROJECTS", "SCALES", "Project", "Store", "ensure_fleet", "write_fleet_config"]

Store = Literal["postgres", "mysql", "sqlite", "rq"]


@dataclass(frozen=True, slots=True)
class Project:
    key: str
    store: Store
    seed: int


PROJECTS: tuple[Project, ...] = (
    Project("pg1", "postgres", 200),
    Project("pg2", "postgres", 201),
    Project("pg3", "postgres", 202),
    Project("pg4", "postgres", 203),
    Project("maria1", "mysql", 210),
    Project("maria2", "mysql", 211),
    Project("maria3", "mysql", 212),
    Project("lite1", "sqlite", 220),
    Project("lite2", "sqlite", 221),
    Project("rq1", "rq", 230),
)
SCALES = (1_000, 10_000, 100_000)
"""Failed jobs per project: 10k, 100k and 1M across the fleet."""


@dataclass(frozen=True, slots=True)
class Member:
    """One project of one fleet: where its data is."""

    project: Project
    url: str
    prefix: str | None  # RQ's key prefix; None for Laravel tables
    built_seconds: float | None


def _name(per_project: int, project: Project) -> str:
    size = f"{per_project // 1000}k"
    if project.store == "rq":
        return f"fbbench{size}{project.key}"
    return f"fb_bench_fleet_{size}_{project.key}"


def _ensure(per_project: int, project: Project) -> Member:
    name = _name(per_project, project)
    if project.store == "rq":
        rq = ensure_rq_dataset(name, per_project, seed=project.seed, log=log)
        return Member(project, rq.url, rq.prefix, rq.built_seconds)
    dataset = ensure_dataset(
        project.store, name, per_project, seed=project.seed, large=True, log=log
    )
    set_failed_at_index(dataset.url, True)
    return Member(project, dataset.url, None, dataset.built_seconds)


def ensure_fleet(per_project: int, workers: int = 2) -> list[Member]:
    """The fleet of ``per_project`` jobs per project, built where missing (two at a time: the
    generator is Python, one core each) and reused otherwise."""
    # The slowest to build first, so the two workers finish together.
    order = sorted(PROJECTS, key=lambda p: ("mysql", "postgres", "rq", "sqlite").index(p.store))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {p.key: pool.submit(_ensure, per_project, p) for p in order}
        members = {key: future.result() for key, future in futures.items()}
    return [members[p.key] for p in PROJECTS]


def write_fleet_config(
    path: str, spool_url: str, members: Sequence[Member], *, server: str = ""
) -> str:
    """A failboard.toml over ``members`` (Laravel and RQ projects)."""
    text = f'[spool]\nurl = "{spool_url}"\n'
    if server:
        text += f"\n[server]\n{server}\n"
    for member in members:
        key = member.project.key
        if member.prefix is None:
            text += f'\n[[projects]]\nkey = "{key}"\ndriver = "laravel"\nurl = "{member.url}"\n'
        else:
            text += (
                f'\n[[projects]]\nkey = "{key}"\ndriver = "rq"\nurl = "{member.url}"\n'
                f'prefix = "{member.prefix}"\n'
            )
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
    return path


if __name__ == "__main__":
    import sys

    for size in [int(arg) for arg in sys.argv[1:]] or list(SCALES):
        for member in ensure_fleet(size):
            log(f"{member.project.key}: {member.url} ({member.built_seconds or 'reused'})")

"""The JSON API and the failed-jobs page select the same jobs for the same filters.

The page reads its filters from the URL (web/filters.py, ``from``/``to``/``range``), the API from
its own parameters (``failed_after``/``failed_before``); each pair below asks both for one set of
jobs over the same seeded stores, and the rows the page renders must be the API's items, in order.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from failboard.config import parse_settings
from failboard.db import create_engine
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.web import create_app
from failboard.web.filters import Filters

STEP = timedelta(minutes=37)
"""A row every 37 minutes, the projects a third of a step apart: the nearest rows to the 24 h
edge are 3 minutes older and 9 minutes newer than it, so the page's "last 24 h", counted from
the moment of its request, selects the rows the API's bound does for 9 minutes after seeding."""
PER_PROJECT = 60
QUEUES = ("default", "emails", "payments")
CONNECTIONS = ("database", "redis")
NAMES = ("App\\Jobs\\SendInvoice", "App\\Jobs\\ChargeCard", "App\\Jobs\\ReserveStock")
ERRORS = ("RuntimeException: gateway said no", "TimeoutException: waited 30s", "LogicException")
WORDS = ("apple", "banana", "cherry", "damson", "elder")


def _seed(path: Path, offset: int, now: datetime) -> str:
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    laravel_schema.create_tables(engine)
    rows = []
    for i in range(PER_PROJECT):
        job_uuid = str(uuid.uuid4())
        n = i + offset
        rows.append(
            {
                "uuid": job_uuid,
                "connection": CONNECTIONS[n % 2],
                "queue": QUEUES[n % 3],
                "payload": laravel_payload.build_payload(NAMES[(n // 2) % 3], uuid=job_uuid),
                "exception": f"{ERRORS[n % 3]} for {WORDS[n % 5]} #{n} in /app/x.php:1\n#0",
                # Projects interleave in time (offsets 0, 1, 2 of one step in three).
                "failed_at": (now - STEP * i - STEP * offset / 3).replace(tzinfo=None),
            }
        )
    with engine.begin() as connection:
        laravel_schema.insert_failed_jobs(connection, rows)
    engine.dispose()
    return url


class Ago(timedelta):
    """A moment this long before the rows' "now", resolved when a case runs. That "now" is
    fixed when the module's fixture seeds the rows, not at import: CI collects the suite
    minutes before this module runs, and the page's "last 24 h" counts from its request."""


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, datetime]]:
    """A dashboard over three seeded projects, and the moment the rows were seeded around."""
    tmp_path = tmp_path_factory.mktemp("filters")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    projects = "".join(
        f'[[projects]]\nkey = "{key}"\ndriver = "laravel"\n'
        f'url = "{_seed(tmp_path / key, n, now)}"\n'
        for n, key in enumerate(("shop", "billing", "search"))
    )
    text = f'[spool]\nurl = "sqlite:///{tmp_path}/spool.db"\n{projects}'
    app = create_app(parse_settings(text, source=tmp_path / "f.toml"), inline=False)
    app.state.board.spool.migrate()
    with TestClient(app) as test_client:
        yield test_client, now


def _minute(moment: datetime) -> str:
    """As the page's datetime-local inputs send it (UTC, no zone)."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


AFTER = Ago(hours=30, minutes=7)
BEFORE = Ago(hours=6, minutes=11)
DAY_AGO = Ago(hours=24)

Params = list[tuple[str, str | Ago]]

# (the page's parameters, the API's parameters) meaning the same jobs.
CASES: dict[str, tuple[Params, Params]] = {
    "nothing": ([], []),
    "one project": ([("project", "shop")], [("project", "shop")]),
    "two projects": (
        [("project", "shop"), ("project", "search")],
        [("project", "shop"), ("project", "search")],
    ),
    "queue": ([("queue", "emails")], [("queue", "emails")]),
    "connection": ([("connection", "redis")], [("connection", "redis")]),
    "name": ([("name", NAMES[1])], [("name", NAMES[1])]),
    "exception": ([("exception", "TimeoutException")], [("exception", "TimeoutException")]),
    "q": ([("q", "cherry")], [("q", "cherry")]),
    "from and to": (
        [("from", AFTER), ("to", BEFORE)],
        [("failed_after", AFTER), ("failed_before", BEFORE)],
    ),
    "from only": ([("from", AFTER)], [("failed_after", AFTER)]),
    "to only": ([("to", BEFORE)], [("failed_before", BEFORE)]),
    "last 24h": ([("range", "24h")], [("failed_after", DAY_AGO)]),
    "oldest first": ([("order", "oldest")], [("order", "oldest")]),
    "newest first": ([("order", "newest")], [("order", "newest")]),
    "limit": ([("limit", "7")], [("limit", "7")]),
    "limit, oldest": ([("limit", "9"), ("order", "oldest")], [("limit", "9"), ("order", "oldest")]),
    "everything at once": (
        [
            ("project", "shop"),
            ("project", "billing"),
            ("queue", "default"),
            ("q", "apple"),
            ("from", AFTER),
            ("order", "oldest"),
            ("limit", "3"),
        ],
        [
            ("project", "shop"),
            ("project", "billing"),
            ("queue", "default"),
            ("q", "apple"),
            ("failed_after", AFTER),
            ("order", "oldest"),
            ("limit", "3"),
        ],
    ),
    "a filter left empty": (
        [("queue", ""), ("q", ""), ("project", "")],
        [("queue", ""), ("q", ""), ("project", "")],
    ),
    "spaces around a filter": (
        [("queue", " emails "), ("project", "billing"), ("q", "  cherry")],
        [("queue", " emails "), ("project", "billing"), ("q", "  cherry")],
    ),
    "a project twice": (
        [("project", "billing"), ("project", "billing")],
        [("project", "billing"), ("project", "billing")],
    ),
}


def _rows(page: str) -> list[tuple[str, str]]:
    """(project, job id) of each row of the jobs table, top to bottom."""
    return re.findall(r'<tr data-project="([^"]+)" data-id="([^"]+)">', page)


def _at(params: Params, now: datetime, written: Callable[[datetime], str]) -> list[tuple[str, str]]:
    """``params`` with each :class:`Ago` made a moment before ``now``, written as its side
    (the page's datetime-local inputs or the API's ISO 8601) writes it."""
    return [
        (key, written(now - value) if isinstance(value, Ago) else value) for key, value in params
    ]


@pytest.mark.parametrize("name", list(CASES))
def test_the_api_and_the_page_list_the_same_jobs(
    seeded: tuple[TestClient, datetime], name: str
) -> None:
    client, now = seeded
    page_params, api_params = _at(CASES[name][0], now, _minute), _at(CASES[name][1], now, _z)
    if all(key != "limit" for key, _ in page_params):
        # Every job of the stores (180) in one page, so that a filter shows in what it leaves.
        page_params, api_params = [*page_params, ("limit", "500")], [*api_params, ("limit", "500")]
    response = client.get("/api/v1/jobs", params=api_params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["errors"] == []
    listed = [(job["project"], job["id"]) for job in body["items"]]
    page = client.get("/", params=page_params)
    assert page.status_code == 200
    assert _rows(page.text) == listed
    # Never vacuous: every case selects some jobs and, but for the empty filters, not all of
    # them newest first.
    everything = client.get("/api/v1/jobs", params={"limit": 500}).json()["items"]
    assert len(everything) == 3 * PER_PROJECT
    assert listed
    if name not in ("nothing", "newest first", "a filter left empty"):
        assert listed != [(job["project"], job["id"]) for job in everything]


def test_the_api_bounds_narrow_the_page_filters_never_widen_them() -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    after, before = now - AFTER, now - BEFORE
    filters = Filters.parse({"from": _minute(after), "to": _minute(before)})
    wider = filters.query(failed_after=after - STEP, failed_before=before + STEP)
    assert (wider.failed_after, wider.failed_before) == (after, before)
    narrower = filters.query(
        failed_after=(after + STEP).replace(tzinfo=None), failed_before=before - STEP
    )
    assert (narrower.failed_after, narrower.failed_before) == (after + STEP, before - STEP)

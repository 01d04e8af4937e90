"""The JSON API and the failed-jobs page select the same jobs for the same filters.

The page reads its filters from the URL (web/filters.py, ``from``/``to``/``range``), the API from
its own parameters (``failed_after``/``failed_before``); each pair below asks both for one set of
jobs over the same seeded stores, and the rows the page renders must be the API's items, in order.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
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

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
STEP = timedelta(minutes=37)  # a row every 37 minutes: none within 3 minutes of the 24h edge
PER_PROJECT = 60
QUEUES = ("default", "emails", "payments")
CONNECTIONS = ("database", "redis")
NAMES = ("App\\Jobs\\SendInvoice", "App\\Jobs\\ChargeCard", "App\\Jobs\\ReserveStock")
ERRORS = ("RuntimeException: gateway said no", "TimeoutException: waited 30s", "LogicException")
WORDS = ("apple", "banana", "cherry", "damson", "elder")


def _seed(path: Path, offset: int) -> str:
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
                "failed_at": (NOW - STEP * i - STEP * offset / 3).replace(tzinfo=None),
            }
        )
    with engine.begin() as connection:
        laravel_schema.insert_failed_jobs(connection, rows)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp_path = tmp_path_factory.mktemp("filters")
    projects = "".join(
        f'[[projects]]\nkey = "{key}"\ndriver = "laravel"\nurl = "{_seed(tmp_path / key, n)}"\n'
        for n, key in enumerate(("shop", "billing", "search"))
    )
    text = f'[spool]\nurl = "sqlite:///{tmp_path}/spool.db"\n{projects}'
    app = create_app(parse_settings(text, source=tmp_path / "f.toml"), inline=False)
    app.state.board.spool.migrate()
    with TestClient(app) as test_client:
        yield test_client


def _minute(moment: datetime) -> str:
    """As the page's datetime-local inputs send it (UTC, no zone)."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


AFTER = NOW - timedelta(hours=30, minutes=7)
BEFORE = NOW - timedelta(hours=6, minutes=11)
DAY_AGO = NOW - timedelta(hours=24)

Params = list[tuple[str, str]]

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
        [("from", _minute(AFTER)), ("to", _minute(BEFORE))],
        [("failed_after", _z(AFTER)), ("failed_before", _z(BEFORE))],
    ),
    "from only": ([("from", _minute(AFTER))], [("failed_after", _z(AFTER))]),
    "to only": ([("to", _minute(BEFORE))], [("failed_before", _z(BEFORE))]),
    "last 24h": ([("range", "24h")], [("failed_after", _z(DAY_AGO))]),
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
            ("from", _minute(AFTER)),
            ("order", "oldest"),
            ("limit", "3"),
        ],
        [
            ("project", "shop"),
            ("project", "billing"),
            ("queue", "default"),
            ("q", "apple"),
            ("failed_after", _z(AFTER)),
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


@pytest.mark.parametrize("name", list(CASES))
def test_the_api_and_the_page_list_the_same_jobs(client: TestClient, name: str) -> None:
    page_params, api_params = CASES[name]
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
    filters = Filters.parse({"from": _minute(AFTER), "to": _minute(BEFORE)})
    wider = filters.query(failed_after=AFTER - STEP, failed_before=BEFORE + STEP)
    assert (wider.failed_after, wider.failed_before) == (AFTER, BEFORE)
    narrower = filters.query(
        failed_after=(AFTER + STEP).replace(tzinfo=None), failed_before=BEFORE - STEP
    )
    assert (narrower.failed_after, narrower.failed_before) == (AFTER + STEP, BEFORE - STEP)

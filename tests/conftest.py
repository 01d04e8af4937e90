from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services import fresh_database

DATABASES = ["sqlite", "postgres", "mysql"]


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database on each of SQLite, PostgreSQL and MariaDB, one test run per kind."""
    with fresh_database(request.param) as url:
        yield url


@pytest.fixture
def sqlite_url() -> Iterator[str]:
    with fresh_database("sqlite") as url:
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API keeps an event loop running in the main
    thread until the session ends, and any later test that calls ``asyncio.run()`` (the async
    engines' tests, an in-process agent re-sending through arq or taskiq) would fail."""
    items.sort(key=lambda item: "/tests/browser/" in str(item.path))

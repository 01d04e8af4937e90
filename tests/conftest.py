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

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.cases import CASES, UNGROUPED, DriverCase


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Iterator[DriverCase]:
    with CASES[request.param]() as driver_case:
        yield driver_case


@pytest.fixture(params=sorted(set(CASES) - UNGROUPED))
def grouped_case(request: pytest.FixtureRequest) -> Iterator[DriverCase]:
    """The cases whose executor runs several actions' jobs in one call."""
    with CASES[request.param]() as driver_case:
        yield driver_case

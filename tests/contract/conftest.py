from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.cases import CASES, DriverCase


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Iterator[DriverCase]:
    with CASES[request.param]() as driver_case:
        yield driver_case

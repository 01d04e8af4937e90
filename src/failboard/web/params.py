"""Bounds of the API's inputs that the schema alone would let through to a 500.

An action id beyond a 64-bit integer overflows the spool's database driver, and a datetime
whose offset carries it past year 1 or 9999 overflows when it is turned to UTC: both are the
client's mistake, so both are refused with 422 at the door, before any store sees them. A
datetime is an ISO 8601 date-time, as the schema says; pydantic alone would also take a bare
number as Unix seconds (``?since=0.5``), which no documented client sends and which reads like
a mistake (hours?), so it is refused too.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, BeforeValidator

from failboard.models import to_utc

__all__ = ["MAX_ID", "ActionId", "Moment", "in_range", "iso_only"]

MAX_ID = 2**63 - 1  # BIGINT, the widest id column of every spool backend

ActionId = Annotated[int, Path(ge=1, le=MAX_ID)]


_ISO = re.compile(r"\d{4}-\d\d-\d\d[Tt ]")


def iso_only(value: Any) -> Any:
    if isinstance(value, str) and not _ISO.match(value):
        raise ValueError("an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    if isinstance(value, int | float):
        raise ValueError("an ISO 8601 date-time string, not a number")
    return value


def in_range(value: datetime) -> datetime:
    try:
        to_utc(value)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None
    return value


Moment = Annotated[datetime, BeforeValidator(iso_only), AfterValidator(in_range)]

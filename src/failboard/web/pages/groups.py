"""``/groups``: failures grouped by fingerprint across projects, the bug list of an incident."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from failboard.auth import Permission
from failboard.exceptions import InvalidRequest, NotFound
from failboard.web import access
from failboard.web.api import board_of
from failboard.web.charts import sparkline
from failboard.web.filters import RANGES, Filters
from failboard.web.templating import render

__all__ = ["router"]

router = APIRouter()

SPARK_BUCKETS = 28
SPARK_HOURS = 6  # 28 six-hour bars: the past week at a glance


@router.get("/groups")
def groups(request: Request) -> Response:
    board = board_of(request)
    filters = Filters.parse(request.query_params)
    who = access.need(request, Permission.READ)
    keys = access.within(request, filters).projects
    span = RANGES.get(filters.range)
    since = datetime.now(UTC) - span if span else None
    error = ""
    rows: list[Any] = []
    errors: list[Any] = []
    sample = ""
    try:
        scan = board.group_scan(keys, since)
        rows, errors = scan.groups, scan.errors
        partial = [key for key, whole in scan.complete.items() if not whole]
        if partial:
            # Say plainly when counts are a sample: an operator sizing an incident must not
            # read "5,000" as "all of them".
            read = max(scan.scanned.get(key, 0) for key in partial)
            names = ", ".join(sorted(partial))
            sample = (
                f"Counts come from the newest {read:,} failures of {names}; "
                "older failures of those projects are not counted."
            )
    except (InvalidRequest, NotFound) as exc:
        error = exc.message
    now_hour = int(time.time() // 3600)
    first = now_hour - SPARK_BUCKETS * SPARK_HOURS + 1
    sparks = {}
    for group in rows:
        values = [0] * SPARK_BUCKETS
        for hour, count in group.hours.items():
            if hour >= first:
                values[min(SPARK_BUCKETS - 1, (hour - first) // SPARK_HOURS)] += count
        sparks[group.fingerprint] = sparkline(values, label="failures over the past 7 days")
    context: dict[str, Any] = {
        "groups": rows,
        "errors": errors,
        "error": error,
        "sample": sample,
        "sparks": sparks,
        "filters": filters,
        "ranges": list(RANGES),
        "projects": [p for p in board.settings.projects if who.sees(p.key)],
        "names": {p.key: p.name or p.key for p in board.settings.projects if who.sees(p.key)},
        "may_act": who.grants(Permission.ACT),
    }
    return render(request, "groups.html", context)

"""``/projects``: every project's health, and its failures per hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from failboard.web import access
from failboard.web.api import board_of
from failboard.web.charts import bars
from failboard.web.templating import render

__all__ = ["router"]

router = APIRouter()

SPANS = {"24h": 24, "7d": 24 * 7}


@router.get("/projects")
def projects(request: Request, span: str = "24h") -> Response:
    board = board_of(request)
    who = access.principal(request)
    access.scope(request, ())  # 403 for a principal with no project here
    span = span if span in SPANS else "24h"
    hours = SPANS[span]
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    statuses = [s for s in board.projects_status() if who.sees(s.key)]
    reachable = [s.key for s in statuses if s.status == "ok"]
    counts, _ = board.histogram(reachable, start, timedelta(hours=1), hours)
    labels = [
        (start + timedelta(hours=i)).strftime("%H:00" if hours <= 24 else "%a %d")
        for i in range(hours)
    ]
    charts = {
        key: bars(
            values,
            labels,
            label=f"failures per hour, last {span}",
            tick_every=6 if hours <= 24 else 24,
        )
        for key, values in counts.items()
    }
    totals = {key: sum(values) for key, values in counts.items()}
    context: dict[str, Any] = {
        "statuses": statuses,
        "charts": charts,
        "totals": totals,
        "span": span,
        "spans": list(SPANS),
    }
    return render(request, "projects.html", context)

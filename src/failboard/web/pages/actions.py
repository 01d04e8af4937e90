"""``/actions``: the spool's history, refreshed in place while anything is still open."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from failboard.exceptions import FailboardError
from failboard.models import Action, ActionStatus
from failboard.web import access
from failboard.web.api import board_of
from failboard.web.templating import render

__all__ = ["router"]

router = APIRouter()


def _rows(request: Request, project: str, status: str, limit: int) -> tuple[list[Action], str]:
    keys = access.scope(request, [project] if project else [])
    try:
        rows = board_of(request).actions(
            project=keys or None,
            status=status if status in {s.value for s in ActionStatus} else None,
            limit=limit,
        )
        return rows, ""
    except FailboardError as exc:
        return [], exc.message


@router.get("/actions")
def actions(
    request: Request,
    project: str = "",
    status: str = "",
    fragment: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """The page, or with ``fragment=1`` only its table body (what the poller swaps in)."""
    rows, error = _rows(request, project, status, limit)
    context: dict[str, Any] = {
        "actions": rows,
        "error": error,
        "project": project,
        "status": status,
        "statuses": [s.value for s in ActionStatus],
        "projects": [
            p for p in board_of(request).settings.projects if access.principal(request).sees(p.key)
        ],
        "live": any(not a.status.finished for a in rows),
    }
    return render(request, "_actions_rows.html" if fragment else "actions.html", context)

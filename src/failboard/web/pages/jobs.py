"""``/``: the failed jobs of every project in one table, filtered from the URL."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from failboard.auth import Permission
from failboard.exceptions import InvalidRequest, NotFound
from failboard.models import ActionKind, Cursor, Page
from failboard.web import access
from failboard.web.api import board_of
from failboard.web.filters import RANGES, Filters
from failboard.web.templating import render

__all__ = ["router"]

router = APIRouter()


@router.get("/")
def index(
    request: Request,
    cursor: str = "",
    before: str = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    board = board_of(request)
    filters = Filters.parse(request.query_params)
    who = access.need(request, Permission.READ)
    error = None
    page = Page(items=())
    has_prev = bool(cursor)
    try:
        query = access.within(request, filters).query(limit=limit)
        if before:
            page, has_prev = board.list_jobs_before(query, before)
        else:
            page = board.list_jobs(query, cursor or None)
    except (InvalidRequest, NotFound) as exc:
        error = exc.message
    items = list(page.items)
    visible = [p for p in board.settings.projects if who.sees(p.key)]
    names = {p.key: p.name or p.key for p in visible}
    # Only the buttons this principal may use (the routes refuse the rest anyway).
    can: dict[str, list[str]] = {
        key: access.allowed_actions(who, key, reader.capabilities.actions)
        for key, reader in board.readers.items()
        if who.sees(key)
    }
    prev_cursor = ""
    if has_prev and items and items[0].failed_at is not None:
        first = items[0]
        prev_cursor = Cursor(
            failed_at=first.failed_at,
            project=first.project,
            sort_key=first.sort_key,
            order=filters.order,
        ).encode()
    context: dict[str, Any] = {
        "items": items,
        "errors": list(page.errors),
        "error": error,
        "next_cursor": page.next_cursor,
        "prev_cursor": prev_cursor,
        "filters": filters,
        "params": filters.params() + ([("limit", str(limit))] if limit != 50 else []),
        "projects": visible,
        "may_act": who.grants(Permission.ACT),
        "names": names,
        "open": board.open_actions(items),
        "ranges": list(RANGES),
        "can": can,
        "can_queue": any(ActionKind.RETRY_QUEUE.value in v for v in can.values()),
        "can_prune": any(ActionKind.PRUNE.value in v for v in can.values()),
    }
    return render(request, "index.html", context)

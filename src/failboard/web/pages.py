"""Server-rendered pages: thin clients of the same Board methods the API uses.

A first, read-only cut: the failed-jobs table across projects, a job's detail and the action
history. Every filter lives in the URL. Jinja2 autoescapes everything, since payloads, messages
and job names come from anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from failboard.exceptions import FailboardError, InvalidRequest, NotFound
from failboard.models import JobQuery, Order
from failboard.web.api import board_of

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

FILTERS = ("queue", "connection", "name", "exception", "q")


@router.get("/", response_class=HTMLResponse)
def index(
    request: Request,
    project: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    queue: str = "",
    connection: str = "",
    name: str = "",
    exception: str = "",
    q: str = "",
    cursor: str = "",
    order: Order = "newest",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> HTMLResponse:
    board = board_of(request)
    filters = {
        "queue": queue,
        "connection": connection,
        "name": name,
        "exception": exception,
        "q": q,
    }
    error = None
    items: list[Any] = []
    errors: list[Any] = []
    next_cursor = None
    try:
        query = JobQuery(
            projects=tuple(project),
            order=order,
            limit=limit,
            **{k: v or None for k, v in filters.items()},
        )
        page = board.list_jobs(query, cursor or None)
        items, errors, next_cursor = list(page.items), list(page.errors), page.next_cursor
    except (InvalidRequest, NotFound) as exc:
        error = exc.message
    params = [("project", p) for p in project] + [(k, v) for k, v in filters.items() if v]
    if order != "newest":
        params.append(("order", order))
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "items": items,
            "errors": errors,
            "error": error,
            "next_cursor": next_cursor,
            "filters": filters,
            "selected": set(project),
            "projects": board.settings.projects,
            "names": {p.key: p.name or p.key for p in board.settings.projects},
            "params": params,
            "order": order,
        },
    )


@router.get("/jobs/{project}/{job_id:path}", response_class=HTMLResponse)
def job(request: Request, project: str, job_id: str) -> HTMLResponse:
    board = board_of(request)
    try:
        detail = board.get_job(project, job_id)
    except FailboardError as exc:
        status = 404 if isinstance(exc, NotFound) else 503
        return templates.TemplateResponse(
            request, "error.html", {"message": exc.message}, status_code=status
        )
    payload = detail.payload
    pretty = (
        json.dumps(payload, indent=2, ensure_ascii=False)
        if isinstance(payload, dict | list)
        else str(payload if payload is not None else "")
    )
    actions = [
        a
        for a in board.actions(project=project, limit=200)
        if job_id in (a.params.get("job_ids") or [])
    ]
    return templates.TemplateResponse(
        request, "job.html", {"job": detail, "payload": pretty, "actions": actions}
    )


@router.get("/actions", response_class=HTMLResponse)
def actions(request: Request, project: str = "", status: str = "") -> HTMLResponse:
    board = board_of(request)
    error = None
    rows: list[Any] = []
    try:
        rows = board.actions(project=project or None, status=status or None, limit=200)
    except FailboardError as exc:
        error = exc.message
    return templates.TemplateResponse(
        request,
        "actions.html",
        {"actions": rows, "error": error, "project": project, "status": status},
    )

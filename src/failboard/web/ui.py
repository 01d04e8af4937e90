"""The browser's own JSON endpoints under ``/ui``: counts after the table, and every write.

Writes need the CSRF token (checked by the security middleware before any of this runs). Each
ends as spool rows through :meth:`Board.submit`, exactly like ``POST /api/v1/actions``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from failboard.auth import Permission
from failboard.board import Board
from failboard.drivers.base import Count
from failboard.exceptions import InvalidRequest
from failboard.models import MAX_JOB_IDS, Action, ActionKind, JobQuery
from failboard.web import access
from failboard.web.api import board_of
from failboard.web.filters import Filters
from failboard.web.security import session_id
from failboard.web.selections import Selection, Selections

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

EXACT_CAP = 1_000_000
"""How far a confirmation counts a queue or a prune: far enough to be exact in practice."""


def selections(request: Request) -> Selections:
    kept: Selections = request.app.state.selections
    return kept


def requested_by(request: Request) -> str:
    # Without sign-in, name the browser by a hash of its session, never the session itself.
    anonymous = "web:" + hashlib.sha256(session_id(request).encode()).hexdigest()[:8]
    return access.requested_by(request, anonymous)


def _allowed(request: Request, selection: Selection) -> None:
    """Refused (403) unless the principal may take this action on every project it covers."""
    for project, params in selection.params.items():
        access.require(request, access.permission_for(selection.kind, params), project)


def _total(counts: dict[str, Count]) -> tuple[int, bool]:
    return sum(c.value for c in counts.values()), any(c.capped for c in counts.values())


@router.get("/counts")
def counts(request: Request) -> dict[str, Any]:
    """How many jobs the page's filters match, capped, per project: fetched after the table so
    a slow count never holds the page."""
    board = board_of(request)
    found, errors = board.count_jobs(
        access.within(request, Filters.parse(request.query_params)).query()
    )
    value, capped = _total(found)
    return {
        "value": value,
        "capped": capped,
        "text": f"{value:,}+" if capped else f"{value:,}",
        "projects": {key: str(count) for key, count in found.items()},
        "errors": [e.model_dump() for e in errors],
    }


@router.get("/queues")
def queues(request: Request) -> dict[str, list[str]]:
    return board_of(request).queues(
        access.within(request, Filters.parse(request.query_params)).projects
    )


class JobRef(BaseModel):
    project: str = Field(max_length=64)
    id: str = Field(max_length=255)


class SubmitJobs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["retry", "delete"]
    jobs: list[JobRef] = Field(min_length=1, max_length=MAX_JOB_IDS)
    key: str = Field(min_length=8, max_length=64)


def _actions_json(actions: list[Action]) -> dict[str, Any]:
    return {"actions": [a.model_dump(mode="json") for a in actions]}


@router.post("/actions")
def submit_jobs(request: Request, body: SubmitJobs) -> dict[str, Any]:
    """Retry or delete chosen rows: one action per project (the key makes a double click one)."""
    by_project: dict[str, list[str]] = {}
    for job in body.jobs:
        by_project.setdefault(job.project, []).append(job.id)
    for project in by_project:
        access.require(request, Permission.ACT, project)
    board = board_of(request)
    made = [
        board.submit(
            project,
            body.action,
            {"job_ids": list(dict.fromkeys(ids))},
            requested_by=requested_by(request),
            idempotency_key=f"ui:{body.key}:{project}",
        )
        for project, ids in by_project.items()
    ]
    return _actions_json(made)


class Freeze(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["matching", "group", "queue", "prune"]
    action: Literal["retry", "delete"] = "retry"
    query: str = Field(default="", max_length=8_000)  # the page's query string (its filters)
    fingerprint: str | None = Field(default=None, max_length=128)
    projects: list[str] = Field(default_factory=list, max_length=1_000)
    queue: str | None = Field(default=None, max_length=255)
    hours: float | None = Field(default=None, gt=0, le=24 * 365 * 100)


def _freeze(request: Request, board: Board, body: Freeze, session: str, now: datetime) -> Selection:
    """The set, resolved now, within the principal's projects; refused (403) unless the
    principal may take that action on every one of them."""
    if body.kind != "matching":
        body = body.model_copy(update={"projects": list(access.scope(request, body.projects))})
    if body.kind == "matching":
        from starlette.datastructures import QueryParams

        filters = access.within(request, Filters.parse(QueryParams(body.query)))
        if filters.queue_only and body.action == "retry":
            return _queue_selection(board, filters.projects, filters.text["queue"], session, now)
        ids, _ = board.job_ids(filters.query(now=now))
        return _ids_selection(ActionKind(body.action), ids, session, now)
    if body.kind == "group":
        if not body.fingerprint:
            raise InvalidRequest("fingerprint: required")
        groups, _ = board.groups(tuple(body.projects))
        group = next((g for g in groups if g.fingerprint == body.fingerprint), None)
        ids = {} if group is None else {p: v[:MAX_JOB_IDS] for p, v in group.ids.items()}
        return _ids_selection(ActionKind(body.action), ids, session, now)
    if body.kind == "queue":
        return _queue_selection(board, tuple(body.projects), body.queue or None, session, now)
    if body.hours is None:
        raise InvalidRequest("hours: required for prune (a number > 0)")
    older = now - timedelta(hours=body.hours)
    found, _ = board.count_jobs(
        JobQuery(projects=tuple(body.projects), failed_before=older), EXACT_CAP
    )
    params = {p: {"hours": body.hours} for p in found}
    counts = {p: c.value for p, c in found.items()}
    return Selection(ActionKind.PRUNE, session, params, counts, moment=older)


def _queue_selection(
    board: Board, projects: tuple[str, ...], queue: str | None, session: str, now: datetime
) -> Selection:
    found, _ = board.count_jobs(
        JobQuery(projects=projects, queue=queue, failed_before=now), EXACT_CAP
    )
    moment = now.isoformat().replace("+00:00", "Z")
    params = {p: {"queue": queue, "failed_before": moment} for p in found}
    counts = {p: c.value for p, c in found.items()}
    return Selection(ActionKind.RETRY_QUEUE, session, params, counts, moment=now)


def _ids_selection(
    kind: ActionKind, ids: dict[str, list[str]], session: str, now: datetime
) -> Selection:
    params = {p: {"job_ids": v} for p, v in ids.items() if v}
    counts = {p: len(v) for p, v in ids.items() if v}
    truncated = [p for p, v in ids.items() if len(v) >= MAX_JOB_IDS]
    return Selection(kind, session, params, counts, truncated=truncated, moment=now)


@router.post("/selections")
def freeze(request: Request, body: Freeze) -> dict[str, Any]:
    """Resolve a bulk action's set now and keep it for the confirmation (see selections)."""
    kind = {"prune": ActionKind.PRUNE, "queue": ActionKind.RETRY_QUEUE}.get(body.kind)
    needed = access.permission_for(kind or ActionKind.RETRY, {"queue": body.queue or None})
    access.need(request, needed)
    selection = _freeze(request, board_of(request), body, session_id(request), datetime.now(UTC))
    _allowed(request, selection)
    return selection.to_json(selections(request).keep(selection))


@router.post("/selections/{selection_id}")
def confirm(request: Request, selection_id: str) -> dict[str, Any]:
    selection = selections(request).take(selection_id, session_id(request))
    _allowed(request, selection)
    made = Selections.submit(board_of(request), selection, selection_id, requested_by(request))
    return _actions_json(made)


@router.post("/actions/{action_id}/cancel")
def cancel(request: Request, action_id: int) -> dict[str, Any]:
    board = board_of(request)
    found = access.visible_action(request, board.action(action_id))
    access.require(request, Permission.ACT, found.project)
    return board.cancel(action_id, by=requested_by(request)).model_dump(mode="json")

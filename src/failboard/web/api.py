"""The JSON API of CONTRACT §5, under ``/api/v1``. Thin: every route calls one Board method."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from failboard.auth import Permission
from failboard.board import Board
from failboard.exceptions import Forbidden, InvalidRequest
from failboard.models import (
    MAX_JOB_IDS,
    Action,
    ActionKind,
    ActionStatus,
    FailedJob,
    FailedJobDetail,
    Order,
    ProjectError,
)
from failboard.web import access
from failboard.web.filters import Filters
from failboard.web.metrics import render_metrics
from failboard.web.params import ActionId, Moment
from failboard.web.problems import ERRORS, WRITE_ERRORS, Problem

__all__ = ["router"]

router = APIRouter()


def board_of(request: Request) -> Board:
    board: Board = request.app.state.board
    return board


def requester(request: Request) -> str:
    """The principal's label; only on a loopback dashboard without sign-in, whoever the
    client says it is, marked so."""
    claimed = request.headers.get("x-failboard-user", "").strip()[:64]
    return access.requested_by(request, f"api:{claimed}" if claimed else "api")


class JobsPage(BaseModel):
    items: list[FailedJob]
    next_cursor: str | None
    errors: list[ProjectError]


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str
    action: ActionKind
    job_ids: list[str] | None = Field(default=None, max_length=MAX_JOB_IDS)
    queue: str | None = None
    failed_before: Moment | None = None
    hours: float | None = None
    idempotency_key: str | None = Field(default=None, max_length=128)

    def params(self) -> dict[str, Any]:
        match self.action:
            case ActionKind.RETRY | ActionKind.DELETE:
                return {"job_ids": self.job_ids or []}
            case ActionKind.RETRY_QUEUE:
                params: dict[str, Any] = {"queue": self.queue}
                if self.failed_before is not None:
                    params["failed_before"] = self.failed_before
                return params
            case ActionKind.PRUNE:
                if self.hours is None:
                    raise InvalidRequest("hours: required for prune (a number > 0)")
                return {"hours": self.hours}
        raise InvalidRequest(f"action: unknown action {self.action!r}")


@router.get("/healthz", tags=["ops"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/metrics",
    tags=["ops"],
    response_class=PlainTextResponse,
    # Refusals are JSON, like every other route's.
    responses={
        code: {"model": Problem, "content": {"application/json": {}}} for code in (401, 403)
    },
)
def metrics(request: Request) -> Response:
    """Every project's numbers: for a principal that reads every project (a viewer token with
    ``projects = ["*"]`` for Prometheus), or anyone on a loopback dashboard without sign-in."""
    who = access.principal(request)
    if not who.grants(Permission.READ) or who.projects is not None:
        raise Forbidden('/metrics covers every project: use a token whose projects are ["*"]')
    return Response(render_metrics(board_of(request)), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/projects", tags=["projects"], responses=ERRORS)
def list_projects(request: Request) -> list[dict[str, Any]]:
    who = access.principal(request)
    access.scope(request, ())
    return [s.to_json() for s in board_of(request).projects_status() if who.sees(s.key)]


@router.get("/api/v1/jobs", tags=["jobs"], response_model=JobsPage, responses=ERRORS)
def list_jobs(
    request: Request,
    project: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    queue: str | None = None,
    connection: str | None = None,
    name: str | None = None,
    exception: str | None = None,
    q: str | None = None,
    failed_after: Moment | None = None,
    failed_before: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    order: Order = "newest",
) -> JobsPage:
    # Through the pages' own parser: the API and the pages select the same jobs.
    filters = Filters.parse(
        {
            "project": project,
            "queue": queue,
            "connection": connection,
            "name": name,
            "exception": exception,
            "q": q,
            "order": order,
        }
    )
    query = access.within(request, filters).query(
        limit=limit, failed_after=failed_after, failed_before=failed_before
    )
    page = board_of(request).list_jobs(query, cursor or None)
    return JobsPage(items=list(page.items), next_cursor=page.next_cursor, errors=list(page.errors))


@router.get(
    "/api/v1/jobs/{project}/{job_id:path}",
    tags=["jobs"],
    response_model=FailedJobDetail,
    responses=ERRORS,
)
def get_job(request: Request, project: str, job_id: str) -> FailedJobDetail:
    access.require(request, Permission.READ, project)
    return board_of(request).get_job(project, job_id)


@router.get("/api/v1/groups", tags=["jobs"], responses=ERRORS)
def list_groups(
    request: Request,
    project: Annotated[list[str], Query()] = [],  # noqa: B006
    since: Moment | None = None,
) -> list[dict[str, Any]]:
    groups, _errors = board_of(request).groups(access.scope(request, project), since)
    return [group.to_json() for group in groups]


@router.post(
    "/api/v1/actions",
    tags=["actions"],
    status_code=202,
    response_model=Action,
    responses=WRITE_ERRORS,
)
def create_action(request: Request, body: ActionRequest, response: Response) -> Action:
    params = body.params()
    access.require(request, access.permission_for(body.action, params), body.project)
    action = board_of(request).submit(
        body.project,
        body.action,
        params,
        requested_by=requester(request),
        idempotency_key=body.idempotency_key,
    )
    response.headers["Location"] = f"/api/v1/actions/{action.id}"
    return action


@router.get("/api/v1/actions", tags=["actions"], response_model=list[Action], responses=ERRORS)
def list_actions(
    request: Request,
    project: Annotated[list[str], Query()] = [],  # noqa: B006
    status: ActionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[Action]:
    keys = access.scope(request, project)
    return board_of(request).actions(project=keys or None, status=status, limit=limit)


@router.get(
    "/api/v1/actions/{action_id}", tags=["actions"], response_model=Action, responses=ERRORS
)
def get_action(request: Request, action_id: ActionId) -> Action:
    return access.visible_action(request, board_of(request).action(action_id))


@router.post(
    "/api/v1/actions/{action_id}/cancel",
    tags=["actions"],
    response_model=Action,
    responses=WRITE_ERRORS,
)
def cancel_action(request: Request, action_id: ActionId) -> Action:
    board = board_of(request)
    found = access.visible_action(request, board.action(action_id))
    access.require(request, Permission.ACT, found.project)
    return board.cancel(action_id, by=requester(request))

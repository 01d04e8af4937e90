"""The HTTP agent API (CONTRACT §5, ``/api/v1/agent/…``): what an agent in HTTP mode calls
instead of writing to the spool database itself.

Every route takes ``Authorization: Bearer <token>`` of a ``role = "agent"`` token, which names
exactly one project: 401 without a token or with an unknown one, 403 for a token of any other
role. The token's project is the only one the caller can reach: a claim only ever takes that
project's actions, and an action id of another project answers **404** exactly like an id that
does not exist, so a token cannot even learn which ids other projects have.

The fenced calls (heartbeat, progress, complete, fail, release, and ``settle`` for many outcomes
at once) carry the claim token the claim returned, and run the very same fenced spool operations
as a direct agent: a claim that was taken back answers 409 (``settle`` answers ``status: null``
for that action alone, and for an action of another project, as it cannot tell the two apart).
These requests carry no cookie, so CSRF does not apply to them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator

from failboard.auth import Directory, Permission, Principal
from failboard.exceptions import LeaseLost, NotFound
from failboard.models import Action, ActionResult, UtcDateTime
from failboard.spool import Outcome, Settled, Spool
from failboard.spool.agents import MAX_CLAIM
from failboard.spool.settle import MAX_SETTLE
from failboard.web.params import MAX_ID, ActionId
from failboard.web.problems import ERRORS, Problem

__all__ = ["ClaimedAction", "router"]

T = TypeVar("T")

PREFIX = "/api/v1/agent"
# A claim taken back answers 409 (the fenced calls).
AGENT_ERRORS = {**ERRORS, 409: {"model": Problem, "description": "The claim was taken back."}}
router = APIRouter(prefix=PREFIX, tags=["agent"], responses=AGENT_ERRORS)
_bearer = HTTPBearer(auto_error=False, description="An agent token (role agent, one project).")


class ClaimedAction(Action):
    """An action as its claimer gets it: with the claim token that fences its outcome."""

    claim_token: str | None = None  # shown to the claimer, hidden everywhere else


class Hello(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str = Field(min_length=1, max_length=128, description="The agent's name, host:pid.")


class HelloAnswer(BaseModel):
    project: str
    agent: str
    now: UtcDateTime
    lease_seconds: int


class ClaimRequest(Hello):
    limit: int = Field(default=10, ge=1, le=MAX_CLAIM)


class Fenced(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claim_token: str = Field(min_length=1, max_length=64)


class HeartbeatAnswer(BaseModel):
    lease_until: UtcDateTime


class ProgressRequest(Fenced):
    done: int = Field(ge=0)
    total: int | None = Field(default=None, ge=0)


class CompleteRequest(Fenced):
    result: ActionResult


class FailRequest(Fenced):
    error: str = Field(max_length=100_000)
    retryable: bool = True


class ReleaseRequest(Fenced):
    note: str = Field(default="agent stopped", max_length=10_000)


class SettleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[Outcome] = Field(min_length=1, max_length=MAX_SETTLE)

    @field_validator("outcomes")
    @classmethod
    def _ids_fit(cls, outcomes: list[Outcome]) -> list[Outcome]:
        # An id past BIGINT would overflow the spool's driver (a 500), not find no action.
        for outcome in outcomes:
            if not 1 <= outcome.action_id <= MAX_ID:
                raise ValueError(f"action_id {outcome.action_id}: not an action id")
        return outcomes


class Now(BaseModel):
    now: UtcDateTime


def agent_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The agent token's principal; 401 / 403 otherwise."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "an agent token is required (Authorization: Bearer …)", challenge)
    settings = request.app.state.board.settings
    principal = Directory(settings).token(credentials.credentials)
    if principal is None:
        raise HTTPException(401, "unknown token", challenge)
    if principal.role != "agent" or not principal.grants(Permission.AGENT):
        raise HTTPException(403, "only an agent token (role agent) may use the agent API")
    if principal.projects is None or len(principal.projects) != 1:
        raise HTTPException(403, "an agent token must name exactly one project")
    return principal


AgentToken = Annotated[Principal, Depends(agent_principal)]


def _project(principal: Principal) -> str:
    assert principal.projects is not None  # agent_principal checked it names one project
    (project,) = principal.projects
    return project


def _spool(request: Request) -> Spool:
    spool: Spool = request.app.state.board.spool
    return spool


def _claimer(principal: Principal, agent: str) -> str:
    # The token's name goes into claimed_by and the audit log: an agent can name its own host
    # and pid, but never pass as another token's agent.
    return f"{principal.label}/{agent}"


def _own(request: Request, principal: Principal, action_id: int) -> Spool:
    """The spool, once ``action_id`` is known to be of the token's project (404 otherwise, the
    same answer as for an id that does not exist)."""
    spool = _spool(request)
    try:
        action = spool.get(action_id)
    except NotFound:
        action = None
    if action is None or not principal.can(Permission.AGENT, action.project):
        raise HTTPException(404, f"action {action_id} not found")
    return spool


def _fenced(work: Callable[[], T]) -> T:
    try:
        return work()
    except LeaseLost as exc:
        raise HTTPException(409, exc.message) from exc


@router.post("/hello", response_model=HelloAnswer)
def hello(request: Request, principal: AgentToken, body: Hello) -> HelloAnswer:
    """Record the agent as seen now ("agent last seen"); the spool's clock and lease."""
    spool = _spool(request)
    project = _project(principal)
    name = _claimer(principal, body.agent)
    spool.record_agent(project, name)
    return HelloAnswer(
        project=project, agent=name, now=spool.now(), lease_seconds=spool.lease_seconds
    )


@router.get("/now", response_model=Now)
def now(request: Request, principal: AgentToken) -> Now:
    """The spool's clock (an agent computes ``prune`` cut-offs from it, never from its own)."""
    return Now(now=_spool(request).now())


@router.post("/claim", response_model=list[ClaimedAction])
def claim(request: Request, principal: AgentToken, body: ClaimRequest) -> list[dict[str, Any]]:
    """Claim up to ``limit`` of the token's project's actions, each with its claim token."""
    actions = _spool(request).claim(
        _project(principal), _claimer(principal, body.agent), body.limit
    )
    return [{**a.model_dump(mode="json"), "claim_token": a.claim_token} for a in actions]


@router.post("/actions/{action_id}/heartbeat", response_model=HeartbeatAnswer)
def heartbeat(
    request: Request, principal: AgentToken, action_id: ActionId, body: Fenced
) -> HeartbeatAnswer:
    spool = _own(request, principal, action_id)
    until: datetime = _fenced(lambda: spool.heartbeat(action_id, body.claim_token))
    return HeartbeatAnswer(lease_until=until)


@router.post("/actions/{action_id}/progress", status_code=204)
def progress(
    request: Request, principal: AgentToken, action_id: ActionId, body: ProgressRequest
) -> None:
    spool = _own(request, principal, action_id)
    _fenced(lambda: spool.progress(action_id, body.claim_token, body.done, body.total))


@router.post("/actions/{action_id}/complete", response_model=Action)
def complete(
    request: Request, principal: AgentToken, action_id: ActionId, body: CompleteRequest
) -> Action:
    spool = _own(request, principal, action_id)
    return _fenced(lambda: spool.complete(action_id, body.claim_token, body.result))


@router.post("/settle", response_model=list[Settled])
def settle(request: Request, principal: AgentToken, body: SettleRequest) -> list[Settled]:
    """Record many outcomes in one transaction (what ``complete`` and ``fail`` do, each fenced
    by its claim token). An action whose claim was taken back — or of another project, which
    this token cannot tell from one that does not exist — is answered ``status: null``."""
    return _spool(request).settle(body.outcomes, project=_project(principal))


@router.post("/actions/{action_id}/fail", response_model=Action)
def fail(request: Request, principal: AgentToken, action_id: ActionId, body: FailRequest) -> Action:
    spool = _own(request, principal, action_id)
    return _fenced(
        lambda: spool.fail(action_id, body.claim_token, body.error, retryable=body.retryable)
    )


@router.post("/actions/{action_id}/release", response_model=Action)
def release(
    request: Request, principal: AgentToken, action_id: ActionId, body: ReleaseRequest
) -> Action:
    spool = _own(request, principal, action_id)
    return _fenced(lambda: spool.release(action_id, body.claim_token, body.note))

"""``create_app(settings)``: the FastAPI application, with inline agents in its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from failboard.board import Board
from failboard.config import Settings
from failboard.exceptions import (
    ActionConflict,
    FailboardError,
    Forbidden,
    InvalidRequest,
    NotFound,
    SpoolError,
    StoreError,
    Unsupported,
)
from failboard.inline import InlineAgents
from failboard.web import api, apidocs, login, pages, ui
from failboard.web.access import Gate, session_secret
from failboard.web.agent_api import router as agent_router
from failboard.web.pages.detail import PYGMENTS_CSS
from failboard.web.security import SecurityMiddleware
from failboard.web.selections import Selections
from failboard.web.shared import Clock, SharedState, utc_now
from failboard.web.templating import render

__all__ = ["create_app"]

log = logging.getLogger("failboard.web")

STATIC = Path(__file__).parent / "static"

_STATUS: list[tuple[type[FailboardError], int]] = [
    (NotFound, 404),
    (Forbidden, 403),
    (InvalidRequest, 422),
    (Unsupported, 422),
    (ActionConflict, 409),
    (StoreError, 503),
    (SpoolError, 503),
]


def create_app(
    settings: Settings,
    *,
    board: Board | None = None,
    inline: bool = True,
    clock: Clock = utc_now,
) -> FastAPI:
    """The dashboard and API over ``settings``. ``inline`` starts the agents of the projects
    marked ``agent = "inline"`` in this process (they still go through the spool). ``clock``
    (aware UTC) dates the state the dashboards share: sign-in failures, sign-outs, selections."""
    owned = board is None
    the_board = board or Board(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        agents = InlineAgents(the_board) if inline else None
        if agents is not None:
            agents.start()
        try:
            yield
        finally:
            if agents is not None:
                agents.stop()
            if owned:
                the_board.close()

    app = FastAPI(
        title="failboard",
        version="0.1.0",
        summary="One dashboard, API and CLI for the failed jobs of all your projects.",
        # FastAPI's pages load Swagger UI and ReDoc from a CDN: web/apidocs.py serves /docs.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.board = the_board
    # Sign-outs, sign-in failures and selections live in the spool, so that several dashboards
    # behind one load balancer agree on them (web/shared.py).
    shared = SharedState(the_board.spool)
    app.state.selections = Selections(shared, clock)
    app.state.secret = session_secret(settings)  # ConfigError when sign-in needs a real key
    app.state.gate = Gate(settings, app.state.secret, shared, clock)

    def audit_auth(event: str, user: str, address: str) -> None:
        # A spool outage must not lock operators out during an incident: the sign-in goes on
        # and the miss is logged loudly (docs/audit.md).
        try:
            the_board.spool.audit.append(event, actor=user or "-", detail={"address": address})
        except FailboardError as exc:
            log.error("audit: could not record %s of %r from %s: %s", event, user, address, exc)

    app.state.gate.on_auth.append(audit_auth)
    app.add_middleware(SecurityMiddleware, secret=app.state.secret, gate=app.state.gate)

    @app.exception_handler(FailboardError)
    async def _failboard_error(request: Request, exc: FailboardError) -> Response:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        if isinstance(exc, Forbidden) and not request.url.path.startswith(("/api/", "/ui/")):
            return render(request, "error.html", {"message": exc.message}, status_code=403)
        return JSONResponse({"detail": exc.message}, status_code=status)

    @app.get("/static/pygments.css", include_in_schema=False)
    def _pygments_css() -> Response:
        return Response(
            PYGMENTS_CSS,
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    # Before /static, which would otherwise take its paths.
    app.mount(apidocs.ASSETS, apidocs.assets(), name="apidocs")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(apidocs.router)
    app.include_router(api.router)
    app.include_router(agent_router)
    app.include_router(ui.router)
    app.include_router(login.router)
    app.include_router(pages.router)
    return app

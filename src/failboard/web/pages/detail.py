"""``/jobs/{project}/{id}``: one failed job in full, its history and its look-alikes."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import JsonLexer, PythonTracebackLexer, TextLexer
from starlette.responses import PlainTextResponse, Response

from failboard.auth import Permission
from failboard.exceptions import FailboardError, NotFound
from failboard.models import FailedJob, FailedJobDetail, JobQuery
from failboard.web import access
from failboard.web.api import board_of
from failboard.web.templating import render

__all__ = ["PYGMENTS_CSS", "router"]

router = APIRouter()

HIGHLIGHT_LIMIT = 100_000
"""Characters highlighted; Pygments on megabytes would hold the page for seconds."""
SHOW_LIMIT = 1_000_000
"""Characters shown at all; the rest is one click away as plain text."""
SIMILAR = 20

_FORMATTER = HtmlFormatter(nowrap=True)


def _css(style: str, scope: str) -> str:
    defs: str = HtmlFormatter(style=style).get_style_defs(scope)  # type: ignore[no-untyped-call]
    return defs


# Light by default; the dark style follows the system unless the toggle chose light, or the
# toggle chose dark.
PYGMENTS_CSS = (
    _css("default", ".hl")
    + "\n@media (prefers-color-scheme: dark) {\n"
    + _css("monokai", ":root:not([data-theme=light]) .hl")
    + "\n}\n"
    + _css("monokai", ":root[data-theme=dark] .hl")
)


def code_block(text: str, lexer: Lexer) -> tuple[Markup, bool]:
    """Highlighted head, plain (escaped) rest, and whether the text was cut at SHOW_LIMIT.
    Pygments escapes what it emits; the plain rest goes through markupsafe."""
    shown = text[:SHOW_LIMIT]
    head, rest = shown[:HIGHLIGHT_LIMIT], shown[HIGHLIGHT_LIMIT:]
    if rest:
        # Cut at a line end, so the highlighted part does not stop mid-token.
        cut = head.rfind("\n")
        if cut > HIGHLIGHT_LIMIT // 2:
            head, rest = head[: cut + 1], head[cut + 1 :] + rest
    marked = Markup(highlight(head, lexer, _FORMATTER)) + escape(rest)
    return marked, len(text) > SHOW_LIMIT


def payload_text(detail: FailedJobDetail) -> tuple[str, bool]:
    payload = detail.payload
    if isinstance(payload, dict | list):
        return json.dumps(payload, indent=2, ensure_ascii=False), True
    return ("" if payload is None else str(payload)), False


def similar_jobs(request: Request, job: FailedJobDetail) -> list[FailedJob]:
    """Other jobs with this fingerprint: asked of the stores by name and exception class (both
    filter in the store), then matched on the fingerprint here."""
    if not job.fingerprint:
        return []
    query = JobQuery(
        projects=access.scope(request, ()),
        name=job.name or None,
        exception=job.exception_class or None,
        limit=200,
    )
    page = board_of(request).list_jobs(query)
    return [
        j
        for j in page.items
        if j.fingerprint == job.fingerprint and (j.project, j.id) != (job.project, job.id)
    ][:SIMILAR]


@router.get("/jobs/{project}/{job_id:path}")
def job(request: Request, project: str, job_id: str) -> Response:
    who = access.require(request, Permission.READ, project)
    board = board_of(request)
    try:
        detail = board.get_job(project, job_id)
    except FailboardError as exc:
        status = 404 if isinstance(exc, NotFound) else 503
        return render(request, "error.html", {"message": exc.message}, status_code=status)
    text, is_json = payload_text(detail)
    payload, payload_cut = code_block(text, JsonLexer() if is_json else TextLexer())
    trace = detail.exception or ""
    looks_python = "Traceback (most recent call last)" in trace[:HIGHLIGHT_LIMIT]
    exception, exception_cut = code_block(
        trace, PythonTracebackLexer() if looks_python else TextLexer()
    )
    try:
        history = [
            a
            for a in board.actions(project=project, limit=500)
            if job_id in (a.params.get("job_ids") or [])
        ]
    except FailboardError:
        history = []
    capabilities = board.readers[project].capabilities
    context: dict[str, Any] = {
        "job": detail,
        "project_name": board.project(project).name or project,
        "payload": payload,
        "payload_cut": payload_cut,
        "payload_size": len(text),
        "exception": exception,
        "exception_cut": exception_cut,
        "exception_lines": trace.count("\n") + 1 if trace else 0,
        "actions": history,
        "open": board.open_actions([detail]).get((project, detail.id)),
        "similar": similar_jobs(request, detail),
        "can": access.allowed_actions(who, project, capabilities.actions),
    }
    return render(request, "job.html", context)


@router.get("/raw/{project}/{job_id:path}")
def raw(request: Request, project: str, job_id: str, part: str = "payload") -> Response:
    """The whole payload (or exception) as plain text: for what the page does not show."""
    access.require(request, Permission.READ, project)
    detail = board_of(request).get_job(project, job_id)
    text = detail.exception or "" if part == "exception" else payload_text(detail)[0]
    return PlainTextResponse(
        text,
        headers={"Content-Disposition": f'attachment; filename="{part}.txt"'},
    )

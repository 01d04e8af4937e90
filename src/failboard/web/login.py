"""``/login`` and ``/logout``: the sign-in form of ``[[users]]``, server-rendered, no script.

Both are plain form posts carrying the CSRF field (checked here, constant-time). A successful
sign-in starts a NEW session — new id, so a new CSRF token — and never reuses the one the browser
came with. Failures are rate limited per name and per address (web/throttle.py), cost the same
time whether or not the name exists (auth.Directory), and are logged for fail2ban and the like.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from failboard.audit import AuditEvent
from failboard.web.access import Gate, principal
from failboard.web.security import FIELD, csrf_ok, secure_request, session
from failboard.web.sessions import Session, cookie_header
from failboard.web.templating import render

__all__ = ["router", "safe_next"]

router = APIRouter(include_in_schema=False)
log = logging.getLogger("failboard.web.login")

MAX_FORM = 16_384


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site (no open
    redirect through ``//evil``, ``/\\evil``, ``https:…`` or control characters)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return "/"
    return value


async def _announce(gate: Gate, event: str, user: str, address: str) -> None:
    for hook in gate.on_auth:
        await run_in_threadpool(hook, event, user, address)


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


async def _form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if kind != "application/x-www-form-urlencoded" or len(body) > MAX_FORM:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def _page(
    request: Request, target: str, error: str = "", name: str = "", status: int = 200
) -> Response:
    context = {"next": target, "error": error, "name": name, "passwords": _gate(request).passwords}
    return render(request, "login.html", context, status_code=status)


def _with_session(request: Request, response: Response, value: Session) -> Response:
    gate = _gate(request)
    cookie = cookie_header(gate.codec.dumps(value), secure=secure_request(request.scope, gate))
    response.headers.append("Set-Cookie", cookie)
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    target = safe_next(next)
    who = principal(request)
    if who.authenticated and who.kind != "token":
        return RedirectResponse(target, status_code=303)
    return _page(request, target)


@router.post("/login")
async def login(request: Request) -> Response:
    gate = _gate(request)
    form = await _form(request)
    target = safe_next(form.get("next"))
    name = form.get("name", "").strip()[:128]
    if not csrf_ok(request, form.get(FIELD, "")):
        return _page(request, target, "The form had expired: try again.", name, status=403)
    address = gate.client_ip(request)
    # The throttle and the sign-out query the spool (shared by every dashboard): worker threads.
    wait = await run_in_threadpool(gate.throttle.wait, address, name)
    if wait:
        log.warning("sign-in refused, too many failures: user=%r address=%s", name, address)
        response = _page(
            request, target, f"Too many failed sign-ins: try again in {wait} s.", name, 429
        )
        response.headers["Retry-After"] = str(wait)
        return response
    password = form.get("password", "")[:1024]
    who = await run_in_threadpool(gate.directory.authenticate, name, password) if name else None
    event = AuditEvent.AUTH_SIGNIN if who is not None else AuditEvent.AUTH_SIGNIN_FAILED
    await _announce(gate, event, name, address)
    if who is None:
        await run_in_threadpool(gate.throttle.failed, address, name)
        log.warning("sign-in failed: user=%r address=%s", name, address)
        return _page(request, target, "Wrong name or password.", name, status=401)
    await run_in_threadpool(gate.throttle.succeeded, name)
    log.info("signed in: user=%r address=%s", name, address)
    fresh = Session.signed_in(who.name, gate.password_hash(who.name))
    return _with_session(request, RedirectResponse(target, status_code=303), fresh)


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    if not csrf_ok(request, form.get(FIELD, "")):
        message = "The form had expired: reload the page and sign out again."
        return render(request, "error.html", {"message": message}, status_code=403)
    gate = _gate(request)
    ended = session(request)
    await run_in_threadpool(gate.codec.end, ended)
    if ended.user:
        await _announce(gate, AuditEvent.AUTH_SIGNOUT, ended.user, gate.client_ip(request))
    # A new anonymous session, so the signed-out page's CSRF token is not the old one either.
    return _with_session(request, RedirectResponse("/login", status_code=303), Session.anonymous())

"""The door every request passes: who it is, whether it may come in, CSRF, and strict headers.

In order: the signed session cookie is read (web/sessions.py; a fresh anonymous one is issued when
there is none); the principal is resolved (web/access.py); the unauthenticated are turned away
(401 JSON with ``WWW-Authenticate: Bearer`` for the API, a redirect to ``/login`` for pages);
agent tokens may not use anything but ``/api/v1/agent/``; a write must carry the CSRF token —
HMAC(secret, session id), constant-time compared — unless it is a bearer-token request (which a
browser cannot be made to send cross-site); and a principal without the ``act`` permission may
not write at all. Routes then check the project they touch. ``/api/v1/agent/`` is passed through
untouched: the agent API authenticates its bearer tokens itself.
The JSON API takes ``application/json`` bodies only, which a cross-site form cannot send.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from failboard.auth import Permission, Principal
from failboard.config import Settings
from failboard.web.access import Gate
from failboard.web.sessions import COOKIE, Session, cookie_header

__all__ = [
    "AGENT_PREFIX",
    "COOKIE",
    "HEADER",
    "SecurityMiddleware",
    "csrf_ok",
    "csrf_token",
    "session",
    "session_id",
    "warn_plain_cookies",
]

log = logging.getLogger("failboard.web")

HEADER = "x-csrf-token"
FIELD = "csrf_token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AGENT_PREFIX = "/api/v1/agent/"
# Reachable without signing in: liveness, the sign-in form, and the static files (no data).
PUBLIC_PATHS = frozenset({"/healthz", "/login"})
PUBLIC_PREFIXES = ("/static/",)
# Form posts that check the CSRF field themselves (a middleware cannot read a form body without
# taking it from the route); they are also open to a viewer.
FORM_POSTS = frozenset({"/login", "/logout"})
# Answered with JSON (401), not with a redirect to the sign-in page.
API_PREFIXES = ("/api/", "/ui/", "/metrics", "/openapi.json")

# Every page, /docs included (web/apidocs.py serves Swagger UI from the package): no inline
# script or style, nothing from another origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def make_token(secret: bytes, session: str) -> str:
    return hmac.new(secret, session.encode(), hashlib.sha256).hexdigest()


def session(request: Request) -> Session:
    """The browser's session (read or issued by the middleware before the route runs)."""
    found = request.scope.get("failboard.session_state")
    return found if isinstance(found, Session) else Session.anonymous()


def session_id(request: Request) -> str:
    return str(request.scope.get("failboard.session", ""))


def csrf_token(request: Request) -> str:
    secret: bytes = request.app.state.secret
    return make_token(secret, session_id(request))


def csrf_ok(request: Request, token: str) -> bool:
    return bool(token) and hmac.compare_digest(token.encode(), csrf_token(request).encode())


def secure_request(scope: Scope, gate: Gate) -> bool:
    return gate.secure_cookies or scope.get("scheme") == "https"


def warn_plain_cookies(settings: Settings, host: str) -> bool:
    """At start: one WARNING when the server listens beyond this machine, passwords sign in,
    and ``[server] secure_cookies`` is off. Whether it warned.

    failboard speaks plain http, and a TLS-terminating proxy forwards plain http too, so the
    server cannot tell that browsers use https: only the key marks the session cookie Secure."""
    if is_loopback(host) or settings.server.secure_cookies:
        return False
    if not any(user.password_hash for user in settings.users):
        return False
    log.warning(
        "listening on %s with password sign-in, but the session cookie is not marked Secure: "
        "a browser would send it over plain http too. Serve browsers https only (a "
        "TLS-terminating proxy) and set secure_cookies = true under [server] in %s "
        "(see docs/security.md)",
        host,
        settings.source or "the config",
    )
    return True


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to listen on) reaches this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _wants_json(request: Request, path: str) -> bool:
    return request.method not in ("GET", "HEAD") or path.startswith(API_PREFIXES)


def _refusal(status: int, detail: str, **headers: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)


class SecurityMiddleware:
    """Session, authentication, CSRF and the write permission; security headers on every
    answer."""

    def __init__(self, app: ASGIApp, secret: bytes, gate: Gate) -> None:
        self.app = app
        self.secret = secret
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path: str = scope["path"]
        codec = self.gate.codec
        cookie = request.cookies.get(COOKIE)
        # A signed-in cookie is looked up among the sessions ended on any dashboard: a blocking
        # query, so off the event loop (never when no password sign-in is configured).
        if cookie and codec.needs_database:
            found = await run_in_threadpool(codec.loads, cookie)
        else:
            found = codec.loads(cookie)
        current = found or Session.anonymous()
        scope["failboard.session"] = current.sid
        scope["failboard.session_state"] = current
        fresh = None if found else self.gate.codec.dumps(current)
        if path.startswith(AGENT_PREFIX):
            await self._headers_wrapper(self.app, path, None)(scope, receive, send)
            return
        who = self.gate.resolve(request, found)
        scope["failboard.principal"] = who
        refusal = self._admit(request, path, who)
        if refusal is None and request.method in UNSAFE and path not in FORM_POSTS:
            refusal = self._refuse(request, path, has_cookie=found is not None)
            if refusal is None and not who.grants(Permission.ACT):
                refusal = _refusal(403, f"your role ({who.role}) may not change anything")
        if refusal is not None:
            await self._headers_wrapper(refusal, path, fresh)(scope, receive, send)
            return
        await self._headers_wrapper(self.app, path, fresh)(scope, receive, send)

    def _admit(self, request: Request, path: str, who: Principal) -> Response | None:
        """401 (or the sign-in page) for the unauthenticated; 403 for agent tokens."""
        if _public(path):
            return None
        if not who.authenticated:
            name = self.gate.proxy_user(request)
            if name is not None:
                return _refusal(403, f"{name!r} is signed in at the proxy but is no failboard user")
            if _wants_json(request, path):
                detail = "authentication required: sign in, or send Authorization: Bearer <token>"
                if "authorization" in request.headers:
                    detail = "invalid token"
                return _refusal(401, detail, **{"WWW-Authenticate": "Bearer"})
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        if who.role == "agent":
            return _refusal(403, "an agent token may only use /api/v1/agent/")
        return None

    def _refuse(self, request: Request, path: str, *, has_cookie: bool) -> Response | None:
        """The CSRF check (and the API's JSON-only rule) of a write."""
        token = request.headers.get(HEADER, "")
        if path.startswith("/api/"):
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            body = int(request.headers.get("content-length", "0") or 0) > 0
            if (body or kind) and kind != "application/json":
                return _refusal(415, "the API takes application/json bodies only")
            # A script on a loopback-only dashboard carries no cookie and no token.
            if self.gate.local and not has_cookie and not token:
                return None
        # A browser cannot be made to send an Authorization header to another site.
        if not self.gate.local and "authorization" in request.headers:
            return None
        expected = make_token(self.secret, str(request.scope["failboard.session"]))
        if not has_cookie or not token or not hmac.compare_digest(token, expected):
            return _refusal(403, "missing or bad CSRF token: reload the page and try again")
        return None

    def _headers_wrapper(self, app: ASGIApp, path: str, fresh: str | None) -> ASGIApp:
        gate = self.gate

        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = MutableHeaders(scope=message)
                    headers.setdefault("Content-Security-Policy", CSP)
                    headers.setdefault("X-Content-Type-Options", "nosniff")
                    headers.setdefault("Referrer-Policy", "same-origin")
                    headers.setdefault("X-Frame-Options", "DENY")
                    if gate.secure_cookies:
                        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
                    # A route that set its own session cookie (sign-in, sign-out) wins.
                    has_own = any(v.startswith(f"{COOKIE}=") for v in headers.getlist("set-cookie"))
                    if fresh is not None and not path.startswith("/api/") and not has_own:
                        secure = secure_request(scope, gate)
                        headers.append("Set-Cookie", cookie_header(fresh, secure=secure))
                await send(message)

            await app(scope, receive, send_with_headers)

        return wrapped

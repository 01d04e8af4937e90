"""Browser safety: a session cookie, CSRF tokens bound to it, and strict response headers.

There is no sign-in yet, so the "session" is only a random id per browser. The CSRF token is
HMAC(secret, session id): nothing to store server-side, and a page from another site can neither
read the cookie (HttpOnly) nor make the browser send it (SameSite=Strict), let alone the token.
The JSON API stays usable from scripts: it takes ``application/json`` bodies only, which a
cross-site form cannot send, and a browser that carries our cookie must send the token there too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["COOKIE", "HEADER", "SecurityMiddleware", "csrf_token", "session_id"]

COOKIE = "failboard_session"
HEADER = "x-csrf-token"
FIELD = "csrf_token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's own /docs page pulls Swagger UI from a CDN with an inline script; it is the one page
# that gets a looser policy, and it shows no stored data.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


def make_token(secret: bytes, session: str) -> str:
    return hmac.new(secret, session.encode(), hashlib.sha256).hexdigest()


def session_id(request: Request) -> str:
    """The browser's session id (set by the middleware before the route runs)."""
    return str(request.scope.get("failboard.session", ""))


def csrf_token(request: Request) -> str:
    secret: bytes = request.app.state.secret
    return make_token(secret, session_id(request))


_SESSION = re.compile(r"[A-Za-z0-9_-]{43}")


def _valid_session(value: str | None) -> bool:
    return value is not None and _SESSION.fullmatch(value) is not None


class SecurityMiddleware:
    """Sets the session cookie, checks CSRF on unsafe methods and adds security headers."""

    def __init__(self, app: ASGIApp, secret: bytes) -> None:
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path: str = scope["path"]
        cookie = request.cookies.get(COOKIE)
        fresh = None
        if _valid_session(cookie):
            scope["failboard.session"] = cookie
        else:
            fresh = secrets.token_urlsafe(32)
            scope["failboard.session"] = fresh
        if request.method in UNSAFE:
            refusal = self._refuse(request, path, has_cookie=fresh is None)
            if refusal is not None:
                await self._headers_wrapper(refusal, path, None)(scope, receive, send)
                return
        await self._headers_wrapper(self.app, path, fresh)(scope, receive, send)

    def _refuse(self, request: Request, path: str, *, has_cookie: bool) -> Response | None:
        token = request.headers.get(HEADER, "")
        if path.startswith("/api/"):
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            body = int(request.headers.get("content-length", "0") or 0) > 0
            if (body or kind) and kind != "application/json":
                return JSONResponse(
                    {"detail": "the API takes application/json bodies only"}, status_code=415
                )
            # Scripts carry no cookie; a browser that does must prove the page was ours.
            if not has_cookie and not token:
                return None
        expected = make_token(self.secret, str(request.scope["failboard.session"]))
        if not has_cookie or not token or not hmac.compare_digest(token, expected):
            return JSONResponse(
                {"detail": "missing or bad CSRF token: reload the page and try again"},
                status_code=403,
            )
        return None

    def _headers_wrapper(self, app: ASGIApp, path: str, fresh: str | None) -> ASGIApp:
        docs = path.startswith(DOCS_PATHS)

        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = MutableHeaders(scope=message)
                    headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else CSP)
                    headers.setdefault("X-Content-Type-Options", "nosniff")
                    headers.setdefault("Referrer-Policy", "same-origin")
                    headers.setdefault("X-Frame-Options", "DENY")
                    if fresh is not None and not path.startswith("/api/"):
                        secure = "; Secure" if scope.get("scheme") == "https" else ""
                        headers.append(
                            "Set-Cookie",
                            f"{COOKIE}={fresh}; Path=/; HttpOnly; SameSite=Strict{secure}",
                        )
                await send(message)

            await app(scope, receive, send_with_headers)

        return wrapped

"""Who is asking (the :class:`Gate`) and what they may see and do (the guards every route calls).

A request's principal comes from, in this order: an ``Authorization: Bearer`` token; the trusted
proxy's user header (only when the TCP peer is one of ``[server] trusted_proxies``); the signed
session cookie of a signed-in user. With no users, no tokens and no proxy mode configured,
failboard is a loopback tool (``serve`` refuses any other address) and every request is the
``local`` principal, an admin of every project.

The security middleware (web/security.py) turns away the unauthenticated (401, or a redirect to
the sign-in page) and agent tokens before any route runs; the routes then call :func:`require`,
:func:`scope` or :func:`visible_action` for the project they touch. Refusals are 403 for a role
that lacks the permission and for a project outside the principal's list — whether or not that
project exists, so a refusal never tells a viewer of ``shop`` that ``billing`` is configured.
Actions are named by a number, not a project: one outside the list is 404, like a missing one.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from starlette.requests import HTTPConnection

from failboard.auth import ANONYMOUS, Directory, Permission, Principal
from failboard.config import Settings
from failboard.exceptions import ConfigError, Forbidden, NotFound
from failboard.models import Action, ActionKind
from failboard.web.filters import Filters
from failboard.web.sessions import Session, SessionCodec
from failboard.web.shared import Clock, SharedState, utc_now
from failboard.web.throttle import LoginThrottle

__all__ = [
    "LOCAL",
    "Gate",
    "allowed_actions",
    "need",
    "permission_for",
    "principal",
    "requested_by",
    "require",
    "scope",
    "session_secret",
    "visible_action",
    "within",
]

MIN_SECRET = 32

LOCAL = Principal(name="local", role="admin", projects=None, kind="local")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def session_secret(settings: Settings) -> bytes:
    """The key that signs sessions and CSRF tokens.

    With ``[[users]]`` a real ``[server] secret_key`` is required (refused, not generated): a key
    made per process would sign everyone out at each restart and make every worker refuse the
    others' cookies, and a short or example key would let sessions be forged. Without users
    (loopback use, tokens only) a missing key is made per process: it then signs only CSRF
    tokens, and a restart merely asks open pages to reload."""
    key = settings.server.secret_key
    where = settings.source or "the config"
    if settings.users:
        if not key:
            raise ConfigError(
                f"{where}: server.secret_key: required when [[users]] can sign in; set it to "
                "at least 32 random characters, e.g. from python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'"
            )
        if len(key) < MIN_SECRET or key in {"change-me", "changeme", "secret"}:
            raise ConfigError(
                f"{where}: server.secret_key: too weak ({len(key)} characters); use at least "
                f"{MIN_SECRET} random characters"
            )
    return key.encode() if key else secrets.token_bytes(32)


class Gate:
    """Resolves principals for one app: the directory, the session codec, the proxy mode."""

    def __init__(
        self,
        settings: Settings,
        secret: bytes,
        shared: SharedState | None = None,
        clock: Clock = utc_now,
    ) -> None:
        server = settings.server
        self.directory = Directory(settings)
        self.proxy_header = (server.proxy_user_header or "").lower() or None
        self.trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in server.trusted_proxies
        )
        self.local = not (self.directory.configured or self.proxy_header)
        self.passwords = any(user.password_hash for user in settings.users)
        # Only a password sign-in makes sessions that can be signed out and failures to count:
        # without one, the shared tables are never read (no query per request).
        shared = shared if self.passwords else None
        self.codec = SessionCodec(secret, server.session_hours * 3600, shared, clock)
        self.secure_cookies = server.secure_cookies
        self.projects = tuple(project.key for project in settings.projects)
        self.throttle = LoginThrottle(clock=clock, shared=shared)
        # Called, in a worker thread, with (event, user name, client address) after each
        # sign-in attempt and sign-out (events: failboard.audit.AuditEvent.AUTH_*): the audit
        # log's hook.
        self.on_auth: list[Callable[[str, str, str], None]] = []

    def password_hash(self, user: str) -> str | None:
        return self.directory.password_hash(user)

    def trusted_peer(self, connection: HTTPConnection) -> bool:
        """Whether the TCP peer is a configured proxy (uvicorn runs with proxy_headers off, so
        the peer is the real socket's, not an X-Forwarded-For claim)."""
        host = connection.client.host if connection.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def proxy_user(self, connection: HTTPConnection) -> str | None:
        """The user name the trusted proxy asserts, or None (no proxy mode, no header, or a
        peer that is not a trusted proxy: then the header is ignored, never believed)."""
        if self.proxy_header is None:
            return None
        value = connection.headers.get(self.proxy_header)
        if value is None or not self.trusted_peer(connection):
            return None
        return value.strip()

    def client_ip(self, connection: HTTPConnection) -> str:
        """The client's address for rate limiting: behind a trusted proxy, the address that
        proxy appended last to X-Forwarded-For (earlier entries are the client's own claims)."""
        peer = connection.client.host if connection.client else ""
        forwarded = connection.headers.get("x-forwarded-for")
        if forwarded and self.trusted_peer(connection):
            return forwarded.split(",")[-1].strip() or peer
        return peer

    def resolve(self, connection: HTTPConnection, session: Session | None) -> Principal:
        if self.local:
            return LOCAL
        header = connection.headers.get("authorization")
        if header is not None:
            # A bad token is refused, never quietly replaced by the cookie's user.
            scheme, _, raw = header.partition(" ")
            if scheme.lower() != "bearer" or not raw.strip():
                return ANONYMOUS
            return self.directory.token(raw.strip()) or ANONYMOUS
        name = self.proxy_user(connection)
        if name is not None:
            user = self.directory.user(name)
            return ANONYMOUS if user is None else dataclasses.replace(user, kind="proxy")
        if session is not None and session.user is not None:
            user = self.directory.user(session.user)
            if user is not None and self.codec.valid_for(session, self.password_hash(user.name)):
                return user
        return ANONYMOUS


def principal(connection: HTTPConnection) -> Principal:
    """The request's principal; ANONYMOUS (allowed nothing) if the middleware did not run."""
    found = connection.scope.get("failboard.principal")
    return found if isinstance(found, Principal) else ANONYMOUS


def _gate(connection: HTTPConnection) -> Gate:
    gate: Gate = connection.app.state.gate
    return gate


_VERBS = {
    Permission.READ: "read",
    Permission.ACT: "retry, delete or cancel",
    Permission.ADMIN: "prune or retry every queue",
    Permission.AGENT: "run actions",
}


def _refuse_role(who: Principal, permission: Permission) -> Forbidden:
    role = who.role or "none"
    return Forbidden(f"your role ({role}) may not {_VERBS[permission]}")


def need(connection: HTTPConnection, permission: Permission) -> Principal:
    """The principal, if its role carries ``permission`` (for its projects); else Forbidden."""
    who = principal(connection)
    if not who.grants(permission):
        raise _refuse_role(who, permission)
    return who


def require(connection: HTTPConnection, permission: Permission, project: str) -> Principal:
    """The principal, if it may do ``permission`` on ``project``; else Forbidden."""
    who = principal(connection)
    if not who.sees(project):
        raise Forbidden(f"project {project!r} is not one of yours")
    if not who.grants(permission):
        raise _refuse_role(who, permission)
    return who


def scope(
    connection: HTTPConnection,
    requested: Sequence[str],
    permission: Permission = Permission.READ,
) -> tuple[str, ...]:
    """The projects a listing may cover: ``requested`` if every one is the principal's, else
    Forbidden; with nothing requested, ``()`` (every project) for a principal of every project,
    else exactly its configured projects — never ``()``, which would mean all of them."""
    who = principal(connection)
    if not who.grants(permission):
        raise _refuse_role(who, permission)
    if requested:
        for key in requested:
            if not who.sees(key):
                raise Forbidden(f"project {key!r} is not one of yours")
        return tuple(dict.fromkeys(requested))
    if who.projects is None:
        return ()
    keys = tuple(who.visible(_gate(connection).projects))
    if not keys:
        raise Forbidden("none of your projects is configured on this dashboard")
    return keys


def within(connection: HTTPConnection, filters: Filters) -> Filters:
    """A page's filters limited to the principal's projects (Forbidden for another's). Only for
    the query: the page shows the filters as the URL has them."""
    return dataclasses.replace(filters, projects=scope(connection, filters.projects))


def allowed_actions(who: Principal, project: str, supported: Iterable[ActionKind]) -> list[str]:
    """The actions of ``supported`` the principal may take on ``project`` (the buttons a page
    shows), a named queue's retry counting as an operator's."""
    return sorted(
        kind.value
        for kind in supported
        if who.can(permission_for(kind, {"queue": "named"}), project)
    )


def permission_for(kind: ActionKind | str, params: Mapping[str, Any]) -> Permission:
    """Prune and "retry every queue" touch jobs nobody chose one by one: admins only."""
    kind = ActionKind(kind)
    if kind is ActionKind.PRUNE:
        return Permission.ADMIN
    if kind is ActionKind.RETRY_QUEUE and params.get("queue") is None:
        return Permission.ADMIN
    return Permission.ACT


def visible_action(connection: HTTPConnection, action: Action) -> Action:
    """``action`` if the principal may read it; else NotFound, as if there were none."""
    if not principal(connection).can(Permission.READ, action.project):
        raise NotFound(f"action {action.id} not found")
    return action


def requested_by(connection: HTTPConnection, fallback: str) -> str:
    """Who asked, for ``requested_by`` and the audit log: the principal's label once sign-in
    is configured; on a loopback-only dashboard, ``fallback`` (what the client says)."""
    who = principal(connection)
    return fallback if who.kind == "local" else who.label

"""Browser sessions: a signed, expiring cookie that names a random session id and, once signed
in, the user.

Nothing is stored server-side except the ids of sessions ended by "sign out" (kept until they
would have expired anyway): in the spool database, so that every dashboard refuses a cookie
signed out on any of them (web/shared.py), and in this process's memory, so that a sign-out
holds here even when the spool cannot be reached. The cookie is signed with
``[server] secret_key`` through itsdangerous, so it cannot be forged or extended; it carries a
fingerprint of the user's password hash, so changing a password (or removing the user) ends that
user's sessions everywhere. The CSRF token of a page is HMAC(secret, session id): signing in makes
a new session id, so a session id (and its CSRF token) planted before sign-in is worth nothing
after it (no fixation).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from itsdangerous import BadSignature, URLSafeTimedSerializer

from failboard.exceptions import SpoolError
from failboard.web.shared import Clock, Outage, utc_now

__all__ = ["COOKIE", "EndedSessions", "Session", "SessionCodec", "cookie_header", "fingerprint"]

log = logging.getLogger("failboard.web")

COOKIE = "failboard_session"
MAX_COOKIE = 4_096  # anything longer is not ours: refuse it before the signature check


def fingerprint(password_hash: str | None) -> str:
    """A short digest of a password hash: in the cookie, it ties a session to that password."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Session:
    sid: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    user: str | None = None
    check: str = ""
    issued: float = field(default_factory=time.time)

    @classmethod
    def anonymous(cls) -> Session:
        return cls()

    @classmethod
    def signed_in(cls, user: str, password_hash: str | None) -> Session:
        """A NEW session for ``user``: a fresh id, never the one the browser came with."""
        return cls(user=user, check=fingerprint(password_hash))


class EndedSessions(Protocol):
    """Where every dashboard looks up the sessions signed out on any of them
    (:class:`failboard.web.shared.SharedState`). Raises SpoolError when it cannot answer."""

    def end_session(self, sid: str, expires: datetime, now: datetime) -> None: ...

    def session_ended(self, sid: str) -> bool: ...


class SessionCodec:
    """Cookie value <-> :class:`Session`, signed and timed; plus the ids ended by sign-out.

    ``shared``: the ended sessions of every dashboard. Without it (no password sign-in
    configured: then a session is only a CSRF key, and nobody can be signed out) the ids are
    kept in this process only and no request ever touches the database."""

    def __init__(
        self,
        secret: bytes,
        max_age_seconds: float,
        shared: EndedSessions | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="failboard.session")
        self.max_age = max_age_seconds
        self.shared = shared
        self.clock = clock
        self.outage = Outage("ended sessions")
        self._ended: dict[str, float] = {}
        self._lock = threading.Lock()

    def dumps(self, session: Session) -> str:
        data = [session.sid, session.user, session.check, session.issued]
        value: str = self._serializer.dumps(data)
        return value

    def loads(self, value: str | None) -> Session | None:
        """The session in a cookie; None when absent, forged, expired or ended."""
        if not value or len(value) > MAX_COOKIE:
            return None
        try:
            data = self._serializer.loads(value, max_age=int(self.max_age))
        except BadSignature:  # SignatureExpired is a BadSignature too
            return None
        if not (isinstance(data, list) and len(data) == 4):
            return None
        sid, user, check, issued = data
        if not isinstance(sid, str) or not isinstance(check, str):
            return None
        if user is not None and not isinstance(user, str):
            return None
        if not isinstance(issued, int | float):
            return None
        session = Session(sid=sid, user=user, check=check, issued=float(issued))
        return None if self.ended(session) else session

    def valid_for(self, session: Session, password_hash: str | None) -> bool:
        return hmac.compare_digest(session.check, fingerprint(password_hash))

    @property
    def needs_database(self) -> bool:
        """Whether reading a signed-in cookie costs a query (callers move it off the event
        loop)."""
        return self.shared is not None

    def end(self, session: Session) -> None:
        """Sign-out: this id is refused from now on, by every dashboard. Blocking (a write to
        the spool): call it from a worker thread."""
        now = time.time()
        until = session.issued + self.max_age
        with self._lock:
            for sid in [s for s, kept in self._ended.items() if kept < now]:
                del self._ended[sid]
            self._ended[session.sid] = until
        if self.shared is None or session.user is None:
            return
        try:
            self.shared.end_session(session.sid, datetime.fromtimestamp(until, UTC), self.clock())
        except SpoolError as exc:
            # The sign-out holds here; the other dashboards accept the cookie until it expires.
            log.warning(
                "sign-out of %r ended the session on this dashboard only: %s", session.user, exc
            )
            self.outage.failed(exc)
        else:
            self.outage.answered()

    def ended(self, session: Session) -> bool:
        """Whether ``session`` was signed out. Only a signed-in session is looked up in the
        spool (one primary-key read): an anonymous one is a CSRF key and ending it (sign-out
        replaces it anyway) protects nothing. When the spool cannot answer, this process's own
        sign-outs still count: a spool outage must neither sign everyone out nor keep anyone
        out."""
        with self._lock:
            if session.sid in self._ended:
                return True
        if self.shared is None or session.user is None or self.outage.skipping():
            return False
        try:
            found = self.shared.session_ended(session.sid)
        except SpoolError as exc:
            self.outage.failed(exc)
            return False
        self.outage.answered()
        return found


def cookie_header(value: str, *, secure: bool, clear: bool = False) -> str:
    """The Set-Cookie value. SameSite=Lax and not Strict: a link to a job pasted in chat opens
    signed in (a Strict cookie is not sent on that first cross-site navigation, and the login
    page's fresh cookie would then replace the real one). Lax still keeps the cookie off every
    cross-site POST, and every write needs the CSRF token anyway."""
    parts = [f"{COOKIE}={'' if clear else value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if clear:
        parts.append("Max-Age=0")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)

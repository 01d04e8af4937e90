"""Browser sessions: a signed, expiring cookie that names a random session id and, once signed
in, the user.

Nothing is stored server-side except the ids of sessions ended by "sign out" (kept until they
would have expired anyway). The cookie is signed with ``[server] secret_key`` through
itsdangerous, so it cannot be forged or extended; it carries a fingerprint of the user's password
hash, so changing a password (or removing the user) ends that user's sessions everywhere. The
CSRF token of a page is HMAC(secret, session id): signing in makes a new session id, so a session
id (and its CSRF token) planted before sign-in is worth nothing after it (no fixation).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = ["COOKIE", "Session", "SessionCodec", "cookie_header", "fingerprint"]

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


class SessionCodec:
    """Cookie value <-> :class:`Session`, signed and timed; plus the ids ended by sign-out."""

    def __init__(self, secret: bytes, max_age_seconds: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="failboard.session")
        self.max_age = max_age_seconds
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
        if not isinstance(issued, int | float) or self.ended(sid):
            return None
        return Session(sid=sid, user=user, check=check, issued=float(issued))

    def valid_for(self, session: Session, password_hash: str | None) -> bool:
        return hmac.compare_digest(session.check, fingerprint(password_hash))

    def end(self, session: Session) -> None:
        """Sign-out: this id is refused from now on (in this process; see docs/security.md)."""
        now = time.time()
        with self._lock:
            for sid in [s for s, until in self._ended.items() if until < now]:
                del self._ended[sid]
            self._ended[session.sid] = session.issued + self.max_age

    def ended(self, sid: str) -> bool:
        with self._lock:
            return sid in self._ended


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

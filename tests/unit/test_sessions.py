"""web/sessions.py: signed, expiring, endable cookies; and where sign-outs are looked up —
the shared store for signed-in sessions only, this process's memory when it cannot answer."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import pytest

from failboard.exceptions import SpoolError
from failboard.web.sessions import Session, SessionCodec, cookie_header


class Ended:
    """An EndedSessions that counts its queries and can be made to fail."""

    def __init__(self) -> None:
        self.ended: dict[str, datetime] = {}
        self.lookups = 0
        self.down = False

    def end_session(self, sid: str, expires: datetime, now: datetime) -> None:
        if self.down:
            raise SpoolError("spool (x): cannot connect: refused")
        self.ended[sid] = expires

    def session_ended(self, sid: str) -> bool:
        self.lookups += 1
        if self.down:
            raise SpoolError("spool (x): cannot connect: refused")
        return sid in self.ended


def test_sessions_are_signed_expiring_and_endable(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = SessionCodec(b"k" * 32, max_age_seconds=60)
    session = Session.signed_in("ops", "$argon2id$hash")
    value = codec.dumps(session)
    assert codec.loads(value) == session
    assert codec.valid_for(session, "$argon2id$hash")
    assert not codec.valid_for(session, "$argon2id$changed")  # a new password ends it
    assert codec.loads(value[:-2] + "xx") is None  # tampered
    assert SessionCodec(b"o" * 32, 60).loads(value) is None  # another key
    assert codec.loads("x" * 5000) is None
    assert Session.signed_in("ops", None).sid != session.sid  # a new id at each sign-in
    later = time.time() + 61  # itsdangerous reads the clock through time.time
    monkeypatch.setattr(time, "time", lambda: later)
    assert codec.loads(value) is None  # expired
    monkeypatch.undo()
    codec.end(session)
    assert codec.loads(value) is None  # signed out


def test_a_sign_out_elsewhere_is_seen_and_anonymous_sessions_cost_no_query() -> None:
    shared = Ended()
    here = SessionCodec(b"k" * 32, 3600, shared)
    there = SessionCodec(b"k" * 32, 3600, shared)
    session = Session.signed_in("ops", "$argon2id$hash")
    value = here.dumps(session)
    assert there.loads(value) == session and shared.lookups == 1  # one lookup per request
    here.end(session)
    assert there.loads(value) is None
    # The row lives as long as the cookie could.
    assert shared.ended[session.sid].timestamp() == pytest.approx(session.issued + 3600)
    # An anonymous session (a CSRF key only) is never looked up, nor stored when ended.
    lookups = shared.lookups
    anonymous = Session.anonymous()
    assert there.loads(there.dumps(anonymous)) == anonymous
    here.end(anonymous)
    assert shared.lookups == lookups and anonymous.sid not in shared.ended


def test_without_the_spool_a_sign_out_still_holds_here(caplog: pytest.LogCaptureFixture) -> None:
    shared = Ended()
    codec = SessionCodec(b"k" * 32, 3600, shared)
    staying = Session.signed_in("ops", "$argon2id$hash")
    leaving = Session.signed_in("root", "$argon2id$hash")
    shared.down = True
    with caplog.at_level(logging.WARNING, logger="failboard.web"):
        # Nobody is signed out by the outage...
        assert codec.loads(codec.dumps(staying)) == staying
        # ...and a sign-out during it ends the session in this process, loudly.
        codec.end(leaving)
    assert codec.loads(codec.dumps(leaving)) is None
    assert "ended the session on this dashboard only" in caplog.text
    assert "the spool cannot answer" in caplog.text


def test_after_a_failure_the_spool_is_not_asked_again_for_a_while() -> None:
    shared = Ended()
    codec = SessionCodec(b"k" * 32, 3600, shared)
    now = [0.0]
    codec.outage.clock = lambda: now[0]
    value = codec.dumps(Session.signed_in("ops", "h"))
    shared.down = True
    assert codec.loads(value) is not None and shared.lookups == 1
    assert codec.loads(value) is not None and shared.lookups == 1  # paused: memory only
    shared.down = False
    now[0] += codec.outage.pause
    assert codec.loads(value) is not None and shared.lookups == 2  # asked again


def test_cookie_attributes() -> None:
    plain = cookie_header("v", secure=False)
    assert plain == "failboard_session=v; Path=/; HttpOnly; SameSite=Lax"
    assert cookie_header("v", secure=True).endswith("; Secure")
    assert "Max-Age=0" in cookie_header("v", secure=False, clear=True)

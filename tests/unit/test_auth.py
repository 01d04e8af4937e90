"""failboard.auth and the web layer's pure parts: principals, passwords, tokens, sessions, the
sign-in throttle and the post-sign-in redirect."""

from __future__ import annotations

import time

import pytest

from failboard.auth import (
    ANONYMOUS,
    Directory,
    Permission,
    Principal,
    hash_password,
    new_token,
    token_digest,
    verify_password,
)
from failboard.config import parse_settings
from failboard.web.login import safe_next
from failboard.web.sessions import Session, SessionCodec, cookie_header
from failboard.web.throttle import LoginThrottle, Window

PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize(
    ("role", "read", "act", "admin", "agent"),
    [
        ("viewer", True, False, False, False),
        ("operator", True, True, False, False),
        ("admin", True, True, True, False),
        ("agent", False, False, False, True),
    ],
)
def test_roles_are_cumulative_and_agents_apart(
    role: str, read: bool, act: bool, admin: bool, agent: bool
) -> None:
    who = Principal.of("x", role, ["shop"], "user")  # type: ignore[arg-type]
    assert [who.can(p, "shop") for p in Permission] == [read, act, admin, agent]
    assert not any(who.can(p, "billing") for p in Permission)


def test_scope_star_and_lists() -> None:
    everyone = Principal.of("ops", "operator", ["*"], "user")
    assert everyone.projects is None and everyone.sees("anything")
    some = Principal.of("support", "viewer", ["shop", "mail"], "user")
    assert some.visible(["billing", "mail", "shop"]) == ["mail", "shop"]
    assert not ANONYMOUS.authenticated and not ANONYMOUS.sees("shop")
    assert Principal.of("ci", "viewer", ["*"], "token").label == "token:ci"
    assert everyone.label == "ops"


def test_password_hashes() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, PASSWORD)
    assert not verify_password(hashed, PASSWORD + " ")
    assert not verify_password("not-a-hash", PASSWORD)


def test_tokens_are_random_prefixed_and_stored_as_sha256() -> None:
    token, digest = new_token()
    other, _ = new_token()
    assert token.startswith("fb_") and token != other and len(token) > 40
    assert digest == token_digest(token) and len(digest) == 64


def _directory() -> Directory:
    token = "fb_script"
    text = f"""
[server]
proxy_user_header = "X-User"
trusted_proxies = ["127.0.0.1/32"]
[[users]]
name = "ops"
password_hash = "{hash_password(PASSWORD)}"
role = "operator"
[[users]]
name = "sso"
role = "viewer"
projects = ["shop"]
[[tokens]]
name = "ci"
sha256 = "{token_digest(token)}"
role = "viewer"
"""
    return Directory(parse_settings(text))


def test_directory_authenticates_users_and_tokens() -> None:
    directory = _directory()
    assert directory.configured
    who = directory.authenticate("ops", PASSWORD)
    assert who is not None and who.role == "operator" and who.kind == "user"
    assert directory.authenticate("ops", "wrong") is None
    assert directory.authenticate("nobody", PASSWORD) is None
    # A proxy-only user has no password at all, not even the dummy one.
    assert directory.authenticate("sso", "") is None
    assert directory.authenticate("sso", "failboard: no such user") is None
    sso = directory.user("sso")
    assert sso is not None and sso.projects == frozenset({"shop"})
    token = directory.token("fb_script")
    assert token is not None and token.label == "token:ci"
    assert directory.token("fb_other") is None


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


def test_cookie_attributes() -> None:
    plain = cookie_header("v", secure=False)
    assert plain == "failboard_session=v; Path=/; HttpOnly; SameSite=Lax"
    assert cookie_header("v", secure=True).endswith("; Secure")
    assert "Max-Age=0" in cookie_header("v", secure=False, clear=True)


def test_the_throttle_window() -> None:
    now = [1000.0]
    window = Window(3, 60, clock=lambda: now[0])
    for _ in range(3):
        assert window.wait("a") == 0
        window.fail("a")
    assert window.wait("a") == 60 and window.wait("b") == 0
    now[0] += 30
    assert window.wait("a") == 30
    now[0] += 30
    assert window.wait("a") == 0  # the oldest failures left the window
    window.fail("a")
    window.clear("a")
    assert window.wait("a") == 0


def test_the_login_throttle_counts_names_and_addresses() -> None:
    now = [0.0]
    throttle = LoginThrottle(per_name=2, per_address=3, seconds=10, clock=lambda: now[0])
    throttle.failed("1.1.1.1", "Ops")
    throttle.failed("2.2.2.2", "ops")  # names are compared case-insensitively
    assert throttle.wait("3.3.3.3", "OPS") > 0
    throttle.succeeded("ops")
    assert throttle.wait("3.3.3.3", "ops") == 0
    for name in ("a", "b", "c"):
        throttle.failed("9.9.9.9", name)
    assert throttle.wait("9.9.9.9", "fresh") > 0


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/jobs/shop/1?x=1", "/jobs/shop/1?x=1"),
        ("/", "/"),
        ("", "/"),
        (None, "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("/login", "/"),
        ("/logout", "/"),
    ],
)
def test_safe_next(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected

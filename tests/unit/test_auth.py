"""failboard.auth and the web layer's pure parts: principals, passwords, tokens and the
post-sign-in redirect (sessions: test_sessions.py; the sign-in throttle: test_throttle.py)."""

from __future__ import annotations

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

"""API and agent tokens: random, shown once, stored only as their sha256."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["new_token", "token_digest"]

# A visible prefix lets secret scanners (and people) recognise a leaked failboard token.
PREFIX = "fb_"


def new_token() -> tuple[str, str]:
    """A fresh token and the sha256 to put in ``[[tokens]]``."""
    token = PREFIX + secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    # sha256 and not a slow hash: tokens carry 256 random bits, so there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()

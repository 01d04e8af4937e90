"""The users and tokens of the config, looked up without leaking which names or digests exist."""

from __future__ import annotations

import hmac

from failboard.auth.passwords import DUMMY_HASH, verify_password
from failboard.auth.principal import Principal
from failboard.auth.tokens import token_digest
from failboard.config import Settings

__all__ = ["Directory"]


class Directory:
    def __init__(self, settings: Settings) -> None:
        self._users = {user.name: user for user in settings.users}
        self._tokens = tuple(settings.tokens)

    @property
    def configured(self) -> bool:
        """Whether any way to sign in exists (users or tokens)."""
        return bool(self._users or self._tokens)

    def user(self, name: str) -> Principal | None:
        """The principal of a configured user name (for sessions and proxy headers)."""
        user = self._users.get(name)
        if user is None:
            return None
        return Principal.of(user.name, user.role, user.projects, "user")

    def password_hash(self, name: str) -> str | None:
        """The configured hash of user ``name`` (None for an unknown user or a proxy-only one):
        what a session is bound to, so that changing a password ends its sessions."""
        user = self._users.get(name)
        return None if user is None else user.password_hash

    def authenticate(self, name: str, password: str) -> Principal | None:
        user = self._users.get(name)
        if user is None:
            verify_password(DUMMY_HASH, password)
            return None
        # A proxy-only user (no password_hash) cannot sign in with a password, but costs the
        # same time to refuse as anyone else.
        if (
            not verify_password(user.password_hash or DUMMY_HASH, password)
            or not user.password_hash
        ):
            return None
        return Principal.of(user.name, user.role, user.projects, "user")

    def token(self, raw: str) -> Principal | None:
        digest = token_digest(raw)
        found = None
        # Compare with every digest, in constant time each, so timing does not reveal a prefix.
        for token in self._tokens:
            if hmac.compare_digest(token.sha256, digest):
                found = token
        if found is None:
            return None
        return Principal.of(found.name, found.role, found.projects, "token")

"""Who is asking, and what they may do: principals, roles, password hashes and API tokens.

The web layer turns a request into a :class:`Principal` (session cookie, bearer token or a trusted
proxy header) and asks it ``can(permission, project)`` before every read or write; nothing here
knows about HTTP.
"""

from failboard.auth.directory import Directory
from failboard.auth.passwords import hash_password, verify_password
from failboard.auth.principal import ANONYMOUS, Permission, Principal
from failboard.auth.tokens import new_token, token_digest

__all__ = [
    "ANONYMOUS",
    "Directory",
    "Permission",
    "Principal",
    "hash_password",
    "new_token",
    "token_digest",
    "verify_password",
]

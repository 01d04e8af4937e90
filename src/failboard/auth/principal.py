"""A principal (a signed-in user, an API token, a proxy-asserted user) and its permissions.

Roles are cumulative: a viewer reads; an operator also retries and deletes jobs, retries one named
queue and cancels actions; an admin also prunes and retries every queue at once — the two actions
that touch jobs nobody picked one by one. An ``agent`` token does none of that: it may only claim
and report its own project's actions. Every permission is scoped to the principal's projects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = ["ANONYMOUS", "Permission", "Principal", "RoleName"]

RoleName = Literal["viewer", "operator", "admin", "agent"]
Kind = Literal["user", "token", "proxy", "local", "anonymous"]


class Permission(StrEnum):
    READ = "read"  # pages, listings, details, the action history
    ACT = "act"  # retry / delete chosen jobs, retry one queue, cancel a pending action
    ADMIN = "admin"  # prune, retry every queue
    AGENT = "agent"  # claim, heartbeat and report actions (agent tokens only)


_GRANTS: dict[str, frozenset[Permission]] = {
    "viewer": frozenset({Permission.READ}),
    "operator": frozenset({Permission.READ, Permission.ACT}),
    "admin": frozenset({Permission.READ, Permission.ACT, Permission.ADMIN}),
    "agent": frozenset({Permission.AGENT}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """``projects`` is ``None`` for every project (``["*"]`` in the config)."""

    name: str
    role: RoleName | None
    projects: frozenset[str] | None = None
    kind: Kind = "user"

    @classmethod
    def of(cls, name: str, role: RoleName, projects: Iterable[str], kind: Kind) -> Principal:
        keys = frozenset(projects)
        return cls(name=name, role=role, projects=None if "*" in keys else keys, kind=kind)

    @property
    def authenticated(self) -> bool:
        return self.role is not None

    @property
    def label(self) -> str:
        """How the principal appears in ``requested_by`` and the audit log."""
        prefix = {"user": "", "proxy": "", "local": "", "token": "token:", "anonymous": ""}
        return f"{prefix[self.kind]}{self.name}"

    def grants(self, permission: Permission) -> bool:
        """Whether the role carries ``permission`` for at least one project."""
        return self.role is not None and permission in _GRANTS[self.role]

    def sees(self, project: str) -> bool:
        return self.role is not None and (self.projects is None or project in self.projects)

    def can(self, permission: Permission, project: str) -> bool:
        return self.grants(permission) and self.sees(project)

    def visible(self, projects: Iterable[str]) -> list[str]:
        """The subset of ``projects`` this principal may see, in the given order."""
        return [key for key in projects if self.sees(key)]


ANONYMOUS = Principal(name="anonymous", role=None, projects=frozenset(), kind="anonymous")

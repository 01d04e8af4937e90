"""failboard's error tree. Every error the package raises on purpose is one of these.

    FailboardError
    ├── ConfigError               bad or missing configuration (names file, key and fix)
    ├── NotFound                  an unknown project, job or action
    ├── Forbidden                 the principal's role or projects do not allow this
    ├── InvalidRequest            a request that can never succeed as asked (hours <= 0, ...)
    ├── Unsupported               the driver cannot do that (see its capabilities)
    ├── StoreError                a project's failure store failed (database, Redis)
    │   └── StoreUnreachable      ... could not be reached at all, or timed out
    └── SpoolError                the spool database failed
        ├── ActionConflict        the action's state does not allow this (cancel a claimed one)
        └── LeaseLost             our claim on an action was taken back (fencing said no)

Library errors (SQLAlchemy, redis-py, ...) are translated at the edge of the module that called
the library, with the original kept as ``__cause__``. Each class's docstring is its default message.
"""

from __future__ import annotations

__all__ = [
    "ActionConflict",
    "ConfigError",
    "FailboardError",
    "Forbidden",
    "InvalidRequest",
    "LeaseLost",
    "NotFound",
    "SpoolError",
    "SpoolUnreachable",
    "StoreError",
    "StoreUnreachable",
    "Unsupported",
]


class FailboardError(Exception):
    """failboard failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(FailboardError):
    """The configuration is invalid."""


class NotFound(FailboardError):
    """Not found."""


class Forbidden(FailboardError):
    """You do not have permission to do this."""


class InvalidRequest(FailboardError):
    """The request is invalid."""


class Unsupported(FailboardError):
    """The driver does not support this."""


class StoreError(FailboardError):
    """The project's failure store failed."""


class StoreUnreachable(StoreError):
    """The project's failure store could not be reached."""


class SpoolError(FailboardError):
    """The spool database failed."""


class SpoolUnreachable(SpoolError):
    """The spool database could not be reached (as opposed to answering with an error)."""


class ActionConflict(SpoolError):
    """The action is not in a state that allows this."""


class LeaseLost(SpoolError):
    """The claim on this action was lost (its lease expired and it was taken back)."""

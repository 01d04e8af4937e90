"""The API's refusals, as documented in ``/openapi.json``.

Every refusal is ``{"detail": ...}``: a sentence for a person from failboard's own checks (the
security middleware, the routes, the error handler of app.py), or FastAPI's list of field
errors for a request that does not fit the schema (422). Documenting them lets a client — and
the schemathesis test — tell an answer the API gives on purpose from a broken one.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["ERRORS", "WRITE_ERRORS", "FieldError", "Invalid", "Problem"]


class Problem(BaseModel):
    """A refusal: what was wrong, for a person."""

    detail: str


class FieldError(BaseModel):
    """One field of a request that does not fit the schema (FastAPI's validation error)."""

    loc: list[str | int]
    msg: str
    type: str


class Invalid(BaseModel):
    """422: FastAPI's field errors, or failboard's own sentence for a request that fits the
    schema but not the action (e.g. a prune without ``hours``)."""

    detail: str | list[FieldError]


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No credentials, or a token failboard does not know."},
    403: {"model": Problem, "description": "A role or a project outside the principal's scope."},
    404: {"model": Problem, "description": "No such project, job or action (in scope)."},
    422: {"model": Invalid, "description": "A request that does not fit the schema or action."},
    503: {"model": Problem, "description": "The project's store or the spool is unreachable."},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": Problem, "description": "The action's state or claim does not allow it."},
    415: {"model": Problem, "description": "A body that is not application/json."},
}

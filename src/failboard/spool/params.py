"""Validation of what ``Spool.submit`` accepts: the action kind and its params (CONTRACT §3).

Every refusal is an :class:`InvalidRequest` whose message starts with the field it is about, so
that the API can answer 422 naming the field and the CLI can print one clear line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from failboard.exceptions import InvalidRequest
from failboard.models import MAX_JOB_IDS, ActionKind, to_utc

__all__ = [
    "MAX_HOURS",
    "MAX_JOB_ID_LENGTH",
    "iso_z",
    "parse_kind",
    "text_field",
    "validate_params",
]

MAX_JOB_ID_LENGTH = 255
"""A job id is a driver's handle (a number, a uuid, a Redis key): longer is not an id."""

MAX_HOURS = 24 * 365 * 100
"""Prune at most a century back: unbounded durations overflow datetime arithmetic downstream."""

_KNOWN_PARAMS = frozenset({"job_ids", "queue", "failed_before", "hours"})


def parse_kind(action: ActionKind | str) -> ActionKind:
    """The action kind, or InvalidRequest naming the ones that exist."""
    try:
        return ActionKind(action)
    except ValueError:
        known = ", ".join(kind.value for kind in ActionKind)
        raise InvalidRequest(f"action: unknown action {action!r}; use one of {known}") from None


def text_field(field: str, value: object, max_length: int, *, optional: bool = False) -> str | None:
    """A non-empty string of at most ``max_length`` characters (or None when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{field}: must be a non-empty string")
    if len(value) > max_length:
        raise InvalidRequest(f"{field}: at most {max_length} characters")
    return value


def iso_z(value: datetime) -> str:
    """UTC ISO 8601 with ``Z``, the way CONTRACT §3 writes moments."""
    return to_utc(value).isoformat().replace("+00:00", "Z")


def validate_params(kind: ActionKind, params: object, now: datetime | None) -> dict[str, Any]:
    """The params of one action, checked and normalised.

    ``now`` (the DB clock) is the default ``failed_before`` of ``retry_queue``; with ``now=None``
    that default is left as None, for the caller to fill in from the database.
    """
    if not isinstance(params, Mapping):
        raise InvalidRequest(f"params: must be an object, not {type(params).__name__}")
    for key, value in params.items():
        if key not in _KNOWN_PARAMS:
            raise InvalidRequest(f"params.{key}: unknown parameter")
        # The API hands over every optional body field; the ones this kind does not use may be
        # null, but a value there means the caller asked for something we would silently drop.
        if value is not None and key not in _USES[kind]:
            raise InvalidRequest(f"{key}: not a parameter of {kind.value}")
    if kind in (ActionKind.RETRY, ActionKind.DELETE):
        return {"job_ids": _job_ids(params.get("job_ids"))}
    if kind is ActionKind.RETRY_QUEUE:
        if "queue" not in params:
            # Missing must not silently mean "every queue": that one is asked for with null.
            raise InvalidRequest("queue: required (a queue name, or null for every queue)")
        queue = text_field("queue", params["queue"], 255, optional=True)
        return {"queue": queue, "failed_before": _moment(params.get("failed_before"), now)}
    return {"hours": _hours(params.get("hours"))}


_USES = {
    ActionKind.RETRY: frozenset({"job_ids"}),
    ActionKind.DELETE: frozenset({"job_ids"}),
    ActionKind.RETRY_QUEUE: frozenset({"queue", "failed_before"}),
    ActionKind.PRUNE: frozenset({"hours"}),
}


def _job_ids(value: object) -> list[str]:
    if value is None:
        raise InvalidRequest("job_ids: required (1 to 10000 job ids)")
    # A bare string is iterable too; taking it for a list of one-character ids would be a disaster.
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise InvalidRequest(f"job_ids: must be a list of strings, not {type(value).__name__}")
    if len(value) > MAX_JOB_IDS * 2:
        raise InvalidRequest(f"job_ids: at most {MAX_JOB_IDS} ids, got {len(value)}")
    ids: dict[str, None] = {}  # an ordered set: duplicates dropped, first position kept
    for index, job_id in enumerate(value):
        if not isinstance(job_id, str):
            raise InvalidRequest(f"job_ids[{index}]: must be a string, not {type(job_id).__name__}")
        if not job_id.strip():
            raise InvalidRequest(f"job_ids[{index}]: must not be empty")
        if len(job_id) > MAX_JOB_ID_LENGTH:
            raise InvalidRequest(f"job_ids[{index}]: at most {MAX_JOB_ID_LENGTH} characters")
        ids[job_id] = None
    if not ids:
        raise InvalidRequest("job_ids: name at least one job")
    if len(ids) > MAX_JOB_IDS:
        raise InvalidRequest(f"job_ids: at most {MAX_JOB_IDS} ids, got {len(ids)}")
    return list(ids)


def _moment(value: object, now: datetime | None) -> str | None:
    if value is None:
        return None if now is None else iso_z(now)
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, str):
        try:
            return iso_z(datetime.fromisoformat(value.strip()))
        except ValueError:
            pass
    raise InvalidRequest("failed_before: must be an ISO 8601 moment such as 2026-12-04T15:00:00Z")


def _hours(value: object) -> int | float:
    # bool is an int to Python, but `hours = true` is a mistake, not one hour.
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = "missing" if value is None else f"a {type(value).__name__}"
        raise InvalidRequest(f"hours: must be a number of hours > 0, got {shown}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidRequest(f"hours: must be a number of hours > 0, got {value}")
    if value > MAX_HOURS:
        raise InvalidRequest(f"hours: at most {MAX_HOURS} (a century)")
    return value

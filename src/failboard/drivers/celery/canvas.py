"""A Celery task's place in its canvas: what the recorder keeps of it, and how a re-send puts
it back.

Celery carries a task's canvas in the message itself, not in the broker or the result backend:
``link`` callbacks, ``link_error`` errbacks, the rest of its ``chain`` (reversed: the next task
last), its group (``group_id``, ``group_index``), its chord callback, and its ``root_id`` and
``parent_id``. ``Task.retry`` keeps them by copying them from the request
(``signature_from_request``); a re-send does the same with what the recorder kept, so that a
re-run that succeeds runs the rest of the chain and the ``link`` callbacks, and one that fails
again calls the ``link_error`` errbacks.

All but one go back: the **chord** callback is kept in the row (the operator sees which chord
the task belonged to) but never re-sent. The failure has doomed the chord: the result backend
fails the callback with ``ChordError`` once every header task has returned, and on Redis it
then drops the chord's size (so that late reports cannot complete it) and keeps the failed
result in the chord's list, so a re-run that reported to it again could never run the callback,
only add a stray entry (or, while the header still runs, be counted as one more header task).
The re-sent task keeps its ``group_id``, so its result still names the group.

Signatures are plain dicts in the request, their arguments decoded by kombu's JSON; they are
kept as kombu's JSON read back as plain JSON (typed values stay ``{"__type__": ...}`` objects
until :func:`send_options` restores them), with sensitive names redacted like the task's own
arguments. A canvas that cannot be kept faithfully (not JSON, too large, redacted) is marked,
and such a task is not re-sent: re-sending it alone would silently drop the rest of its chain.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from failboard.failures import redact

__all__ = [
    "CANVAS",
    "CANVAS_LOST",
    "CANVAS_REDACTED",
    "MAX_CANVAS",
    "CanvasNotResendable",
    "capture",
    "send_options",
]

CANVAS = "canvas"
"""The key of the canvas in the failure row's ``options``."""
CANVAS_REDACTED = "canvas_redacted"
"""The key of the paths in the canvas whose values were redacted (the task is not re-sent)."""
CANVAS_LOST = "canvas_lost"
"""The key of why the canvas could not be kept (the task is not re-sent)."""

MAX_CANVAS = 256 * 1024
"""Characters of JSON kept for a canvas: past that the row's ``options`` would be cut."""

# Request attribute -> ``send_task`` option (the key it is stored under).
_SIGNATURES = {"callbacks": "link", "errbacks": "link_error", "chain": "chain"}
_IDS = {
    "group": "group_id",
    "group_index": "group_index",
    "root_id": "root_id",
    "parent_id": "parent_id",
}
_CHORD = "chord"
_NOT_RESENT = frozenset({_CHORD})

Dumps = Callable[[Any], str]
Loads = Callable[[str], Any]
ParamsOf = Callable[[str], Sequence[str] | None]


class CanvasNotResendable(ValueError):
    """The task's canvas was not kept faithfully; re-sending it alone would drop the rest."""


def capture(
    request: Any,
    dumps: Dumps,
    redact_names: Sequence[str] = (),
    params_of: ParamsOf = lambda name: None,
) -> dict[str, Any]:
    """The entries for a failure's ``options`` that keep its place in the canvas.

    ``request`` is the task's ``Context`` (or any object or mapping with its attributes);
    ``dumps`` kombu's JSON encoder; ``params_of(task_name)`` the positional parameter names of
    a task, so that a positional ``password`` of the next task is redacted too. Empty when the
    task has no canvas. Never raises on odd input: what cannot be kept is marked lost."""
    canvas: dict[str, Any] = {}
    for attribute, option in _SIGNATURES.items():
        value = _field(request, attribute)
        if value:
            canvas[option] = list(value) if isinstance(value, list | tuple) else [value]
    chord = _field(request, "chord")
    if chord:
        canvas[_CHORD] = chord
    for attribute, option in _IDS.items():
        value = _field(request, attribute)
        if value is not None and value != "":
            canvas[option] = value
    if not any(key in canvas for key in (*_SIGNATURES.values(), _CHORD, "group_id")):
        return {}  # a lone task: root and parent ids alone are not worth a key
    try:
        text = dumps(canvas)
    except Exception as exc:  # the project's pickle serializer carried objects JSON cannot
        return {CANVAS_LOST: f"the canvas is not JSON ({type(exc).__name__}: {exc})"}
    if len(text) > MAX_CANVAS:
        return {CANVAS_LOST: f"the canvas was {len(text)} characters of JSON, over {MAX_CANVAS}"}
    kept, paths = _redacted(json.loads(text), redact_names, params_of)
    out: dict[str, Any] = {CANVAS: kept}
    if paths:
        out[CANVAS_REDACTED] = paths
    return out


def send_options(options: Mapping[str, Any], loads: Loads) -> dict[str, Any]:
    """The ``send_task`` keyword arguments that put a recorded task back in its canvas (none
    for a row without one). Raises :class:`CanvasNotResendable` when the canvas was lost or
    redacted. ``loads`` is kombu's JSON decoder, which gives typed values back their type."""
    lost = options.get(CANVAS_LOST)
    if lost:
        raise CanvasNotResendable(f"{lost}; re-sent alone the rest of its canvas would not run")
    redacted = options.get(CANVAS_REDACTED)
    if redacted:
        paths = ", ".join(str(path) for path in redacted)
        raise CanvasNotResendable(
            f"arguments in its canvas were redacted ({paths}); re-sending would pass the "
            "placeholder to the other tasks of its canvas"
        )
    canvas = options.get(CANVAS)
    if not isinstance(canvas, Mapping):
        return {}
    decoded = loads(json.dumps(canvas))
    if not isinstance(decoded, dict):
        return {}
    return {key: value for key, value in decoded.items() if key not in _NOT_RESENT}


def _field(request: Any, name: str) -> Any:
    if isinstance(request, Mapping):
        return request.get(name)
    try:
        return getattr(request, name, None)
    except Exception:
        return None


def _redacted(
    canvas: dict[str, Any], names: Sequence[str], params_of: ParamsOf
) -> tuple[dict[str, Any], list[str]]:
    """The canvas with sensitive values replaced, and their paths (``chain[0].kwargs.token``).

    Each signature's arguments are matched like the task's own (positional ones by the next
    task's parameter names); everything else in it, nested signatures included, by key."""
    if not names:
        return canvas, []
    paths: list[str] = []
    out = dict(canvas)
    for option in (*_SIGNATURES.values(), _CHORD):
        value = canvas.get(option)
        if isinstance(value, list):
            out[option] = [
                _signature(item, f"{option}[{index}]", names, params_of, paths)
                for index, item in enumerate(value)
            ]
        elif value is not None:
            out[option] = _signature(value, option, names, params_of, paths)
    return out, paths


def _signature(
    value: Any, where: str, names: Sequence[str], params_of: ParamsOf, paths: list[str]
) -> Any:
    if not isinstance(value, dict):
        _, scrubbed, found = redact((), value, names)
        paths.extend(where + path.removeprefix("kwargs") for path in found)
        return scrubbed
    task = value.get("task")
    params = params_of(task) if isinstance(task, str) else None
    args, kwargs, found = redact(value.get("args") or [], value.get("kwargs") or {}, names, params)
    paths.extend(f"{where}.{path}" for path in found)
    rest = {key: item for key, item in value.items() if key not in ("args", "kwargs")}
    _, rest, found = redact((), rest, names)
    paths.extend(where + path.removeprefix("kwargs") for path in found)
    out = dict(rest)
    if "args" in value:
        out["args"] = args
    if "kwargs" in value:
        out["kwargs"] = kwargs
    return out

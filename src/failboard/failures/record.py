"""One final failure as a recorder hands it over, and how it becomes a row: arguments as JSON
(a safe representation when they are not JSON), sensitive values redacted, long texts capped.

Everything here runs inside a worker that has just seen a task fail: it must never raise on
odd input (objects whose ``repr`` raises, cycles, megabytes of arguments).
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from failboard.fingerprint import fingerprint

__all__ = [
    "DEFAULT_REDACT",
    "MAX_ARGS",
    "REDACTED",
    "Failure",
    "exception_name",
    "redact",
    "to_json",
]

DEFAULT_REDACT: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "secret_key",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "private_key",
    "access_key",
    "credentials",
    "cookie",
)
"""Argument names whose values are never written. A name matches when it equals one of these or
ends with ``_<one of these>`` (``db_password``, ``authToken``), case- and style-insensitively."""

REDACTED = "[redacted]"
MAX_ARGS = 512 * 1024
"""Characters of JSON kept for args (and again for kwargs); past that only a head is kept."""
MAX_MESSAGE = 10_000
MAX_TRACEBACK = 256 * 1024
MAX_DEPTH = 32

Dumps = Callable[[Any], str]


def _std_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Failure:
    """A job's final failure, as the engine's hook saw it.

    ``options`` holds what the engine's re-sender needs besides name, args, kwargs and queue
    (exchange, routing key, priority, headers...). ``param_names`` are the names of the task's
    positional parameters when known, so that a positional ``password`` is redacted too.
    """

    engine: str
    job_id: str
    name: str | None
    queue: str | None = None
    args: Any = ()
    kwargs: Any = field(default_factory=dict)
    exception_class: str | None = None
    exception_message: str | None = None
    traceback: str | None = None
    attempts: int | None = None
    worker: str | None = None
    retry_of: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    failed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    param_names: Sequence[str] | None = None

    def row(
        self, project: str, redact_names: Sequence[str] = DEFAULT_REDACT, dumps: Dumps = _std_dumps
    ) -> dict[str, Any]:
        """The failures-table row of this failure for ``project``."""
        args, kwargs, redacted = redact(self.args, self.kwargs, redact_names, self.param_names)
        args_json, args_lossy = to_json(list(args) if isinstance(args, tuple) else args, dumps)
        kwargs_json, kwargs_lossy = to_json(kwargs, dumps)
        options: dict[str, Any] = dict(self.options)
        if redacted:
            options["redacted"] = redacted
        if args_lossy or kwargs_lossy:
            options["lossy"] = True  # a repr or a cut stands where a value was: not re-sendable
        message = _cut(self.exception_message, MAX_MESSAGE)
        return {
            "project": project,
            "engine": self.engine,
            "job_id": _cut(str(self.job_id), 255),
            "queue": _cut(self.queue, 255),
            "name": _cut(self.name, 255),
            "args": args_json,
            "kwargs": kwargs_json,
            "exception_class": _cut(self.exception_class, 255),
            "exception_message": message,
            "traceback": _cut_middle(self.traceback, MAX_TRACEBACK),
            "fingerprint": fingerprint(self.exception_class, message, self.name),
            "attempts": self.attempts,
            "worker": _cut(self.worker, 255),
            "retry_of": _cut(self.retry_of, 255),
            "options": to_json(options)[0] if options else None,
            "failed_at": _naive_utc(self.failed_at),
        }


def exception_name(exc: BaseException | type[BaseException]) -> str:
    """The exception's class as a Python traceback prints it (``module.Class`` unless builtin)."""
    return _type_name(exc if isinstance(exc, type) else type(exc))


def _type_name(kind: type) -> str:
    module = getattr(kind, "__module__", None)
    name = getattr(kind, "__qualname__", kind.__name__)
    if module in (None, "builtins", "__main__"):
        return str(name)
    return f"{module}.{name}"


# -- redaction -------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _normal(name: str) -> str:
    return _CAMEL.sub("_", name).lower().replace("-", "_")


def _sensitive(name: Any, names: frozenset[str]) -> bool:
    if not isinstance(name, str) or not names:
        return False
    key = _normal(name)
    return key in names or any(key.endswith("_" + n) for n in names)


def redact(
    args: Any,
    kwargs: Any,
    names: Sequence[str] = DEFAULT_REDACT,
    param_names: Sequence[str] | None = None,
) -> tuple[Any, Any, list[str]]:
    """Copies of ``args`` and ``kwargs`` with sensitive values replaced by ``[redacted]``, and
    the paths replaced (``kwargs.password``, ``args[0].token``). Nested mappings are searched
    too; the originals are never changed."""
    wanted = frozenset(_normal(n) for n in names)
    paths: list[str] = []
    new_args: Any = args
    if isinstance(args, list | tuple):
        new_args = []
        for index, value in enumerate(args):
            path = f"args[{index}]"
            param = param_names[index] if param_names and index < len(param_names) else None
            if _sensitive(param, wanted):
                paths.append(path)
                new_args.append(REDACTED)
            else:
                new_args.append(_scrub(value, wanted, path, paths, 0))
    new_kwargs = _scrub(kwargs, wanted, "kwargs", paths, 0)
    return new_args, new_kwargs, paths


def _scrub(value: Any, names: frozenset[str], path: str, paths: list[str], depth: int) -> Any:
    if depth > MAX_DEPTH or not names:
        return value
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            where = f"{path}.{key}"
            if _sensitive(key, names):
                paths.append(where)
                out[key] = REDACTED
            else:
                out[key] = _scrub(item, names, where, paths, depth + 1)
        return out
    if isinstance(value, list | tuple):
        items = [_scrub(v, names, f"{path}[{i}]", paths, depth + 1) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value


# -- JSON ------------------------------------------------------------------------------------

_REPR = reprlib.Repr()
_REPR.maxstring = 2_000
_REPR.maxother = 2_000


def to_json(value: Any, dumps: Dumps = _std_dumps) -> tuple[str, bool]:
    """``value`` as JSON text, and whether that text lost anything.

    ``dumps`` is the engine's own encoder (Celery's kombu JSON keeps datetimes, UUIDs and
    Decimals as typed values that decode back to the same types). When it cannot encode the
    value, each value it cannot encode is shown as ``{"__repr__": ..., "__type__": ...}`` and
    the text is marked lossy; a text longer than :data:`MAX_ARGS` keeps only its head."""
    lossy = False
    try:
        text = dumps(value)
    except Exception:  # any encoder failure: TypeError, ValueError, RecursionError, ...
        text = _std_dumps(_safe(value, 0))
        lossy = True
    if len(text) > MAX_ARGS:
        text = _std_dumps({"__failboard__": "truncated", "size": len(text), "head": text[:4096]})
        lossy = True
    return text, lossy


def _safe(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < MAX_DEPTH:
        if isinstance(value, Mapping):
            return {str(k): _safe(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_safe(v, depth + 1) for v in value]
    try:
        text = _REPR.repr(value)
    except Exception:
        text = "<unrepresentable>"
    return {"__repr__": text, "__type__": _type_name(type(value))}


def _cut(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_middle(text: str | None, limit: int) -> str | None:
    # A traceback's head says where it started and its tail what was raised: keep both.
    if text is None or len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… {len(text) - 2 * half} characters cut …\n{text[-half:]}"


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)

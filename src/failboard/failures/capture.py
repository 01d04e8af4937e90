"""What every recorder hook does with a failure it sees: name the exception, format its
traceback, find the task's positional parameter names (so that a positional ``password`` is
redacted), and name the worker. Nothing here raises.
"""

from __future__ import annotations

import inspect
import os
import socket
import traceback as tb
from collections.abc import Callable
from typing import Any

from failboard.failures.record import exception_name

__all__ = ["ParamNames", "describe", "message_of", "traceback_text", "worker_name"]


def describe(exception: BaseException | None) -> tuple[str | None, str | None, str | None]:
    """``(class, message, traceback)`` of an exception as a Python traceback prints them."""
    if exception is None:
        return None, None, None
    return exception_name(exception), message_of(exception), traceback_text(exception)


def message_of(exception: BaseException) -> str:
    """``str(exception)``, even when that raises."""
    try:
        return str(exception)
    except Exception:
        return "<the exception's str() raised>"


def traceback_text(exception: BaseException) -> str:
    """The formatted traceback, chained causes included (the Recorder caps its length)."""
    try:
        return "".join(tb.format_exception(type(exception), exception, exception.__traceback__))
    except Exception:  # an exception whose repr or str raises inside the formatter
        return f"{exception_name(exception)}: <the traceback could not be formatted>"


def worker_name() -> str:
    """``host:pid``: the process that ran the final attempt (engines without node names)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ParamNames:
    """The positional parameter names of each task, read once per task name from its function."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, ...] | None] = {}

    def of(
        self, name: str, function: Callable[..., Any] | None, skip: int = 0
    ) -> tuple[str, ...] | None:
        """The names for task ``name`` (``skip`` leading parameters the engine passes itself,
        like arq's ``ctx``); None when the function is unknown or has no readable signature."""
        if name not in self._known:
            self._known[name] = _positional(function, skip)
        return self._known[name]


def _positional(function: Callable[..., Any] | None, skip: int) -> tuple[str, ...] | None:
    if function is None:
        return None
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    names = tuple(
        p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )
    return names[skip:]

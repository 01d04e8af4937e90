"""What every re-sender shares: decoding a recorded call, and driving an asyncio client from the
agent's synchronous executor (arq and taskiq only have async clients).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from failboard.failures.executor import StoredFailure

__all__ = ["AsyncBridge", "decode_call"]

T = TypeVar("T")


def decode_call(
    failure: StoredFailure, loads: Callable[[str], Any] = json.loads
) -> tuple[list[Any], dict[str, Any]]:
    """The recorded job's positional and keyword arguments, decoded with the JSON ``loads`` its
    recorder encoded them with. Raises ValueError for a row that cannot be a call (no name, or
    args and kwargs that are not a list and a mapping): that job fails, the others go on."""
    if not failure.name:
        raise ValueError("no task name was recorded")
    args = loads(failure.args) if failure.args else []
    kwargs = loads(failure.kwargs) if failure.kwargs else {}
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError("the recorded args/kwargs are not a list and a mapping")
    return args, kwargs


class AsyncBridge:
    """One event loop for the whole action, so that an async client's connections are made once
    and reused for every job of the action (a loop per send would reconnect each time).

    The agent runs actions in a plain thread, never inside a running loop."""

    def __init__(self) -> None:
        self._runner: asyncio.Runner | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(coroutine)

    def close(self, cleanup: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Run ``cleanup`` (closing the client) on the loop, then close the loop; never raises:
        a broken connection must not fail an action that has already sent its jobs."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            if cleanup is not None:
                runner.run(cleanup())
        except Exception:
            pass
        finally:
            runner.close()

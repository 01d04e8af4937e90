"""``failboard agent`` with a stopwatch on its spool calls and its executor, for the spool bench.

    python -m bench.timed_agent OUT.json agent --project P --config C

Runs the real CLI in this process after wrapping ``Spool.claim``, ``heartbeat``, ``progress``,
``complete``, ``settle`` (the outcomes of a pass, together), ``record_agent`` and the
executor's ``retry`` and ``retry_each`` (a pass's one-job retries, grouped); at exit it
writes, per operation, every call's duration (seconds) and, for claims, how many actions each
returned. Nothing else changes: the agent loop, its threads
and its SQL are failboard's own. The wrappers are set on the classes, so the heartbeat
thread's calls are timed too.
"""

from __future__ import annotations

import atexit
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["main"]

_TIMES: dict[str, list[float]] = {}
_CLAIMED: list[int] = []
_LOCK = threading.Lock()


def _wrap(owner: type, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            with _LOCK:
                _TIMES.setdefault(label, []).append(elapsed)

    setattr(owner, name, timed)


def main() -> None:
    out, *argv = sys.argv[1:]
    from failboard.cli import main as cli
    from failboard.drivers.laravel.executor import LaravelExecutor
    from failboard.spool import Spool

    for name in ("heartbeat", "progress", "complete", "settle", "record_agent"):
        if hasattr(Spool, name):  # settle: since the batched outcomes (a snapshot may predate it)
            _wrap(Spool, name, name)
    _wrap(LaravelExecutor, "retry", "executor.retry")
    if hasattr(LaravelExecutor, "retry_each"):  # the grouped face (a snapshot may predate it)
        _wrap(LaravelExecutor, "retry_each", "executor.retry_each")
    claim = Spool.claim

    def counted(self: Spool, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        actions = claim(self, *args, **kwargs)
        with _LOCK:
            _TIMES.setdefault("claim", []).append(time.perf_counter() - started)
            _CLAIMED.append(len(actions))
        return actions

    Spool.claim = counted  # type: ignore[method-assign,assignment]

    def dump() -> None:
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"times": _TIMES, "claimed": _CLAIMED, "cpu_s": time.process_time()}, f)

    atexit.register(dump)
    sys.argv = ["failboard", *argv]
    cli()


if __name__ == "__main__":
    main()

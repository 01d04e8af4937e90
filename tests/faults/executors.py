"""Executors that misbehave on purpose, for agents run inside the test process.

They implement :class:`failboard.drivers.base.Executor` by duck typing; what each call does is
a function the test gives, so a test can make the "project" slow, or crash it every time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from failboard.drivers.base import Capabilities, Progress, no_progress
from failboard.models import ActionKind, ActionResult

__all__ = ["ScriptedExecutor"]

Script = Callable[[ActionKind, Sequence[str], Progress], ActionResult]


class ScriptedExecutor:
    """Every action runs ``script(kind, job_ids, progress)``; ``calls`` records each run."""

    capabilities = Capabilities()

    def __init__(self, script: Script, project: str = "shop") -> None:
        self.project = project
        self.script = script
        self.calls: list[tuple[ActionKind, tuple[str, ...]]] = []

    def _run(self, kind: ActionKind, job_ids: Sequence[str], progress: Progress) -> ActionResult:
        self.calls.append((kind, tuple(job_ids)))
        return self.script(kind, job_ids, progress)

    def retry(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        return self._run(ActionKind.RETRY, job_ids, progress)

    def delete(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        return self._run(ActionKind.DELETE, job_ids, progress)

    def retry_queue(
        self, queue: str | None, failed_before: datetime, progress: Progress = no_progress
    ) -> ActionResult:
        return self._run(ActionKind.RETRY_QUEUE, (), progress)

    def prune(self, older_than: datetime, progress: Progress = no_progress) -> ActionResult:
        return self._run(ActionKind.PRUNE, (), progress)

    def close(self) -> None:
        pass

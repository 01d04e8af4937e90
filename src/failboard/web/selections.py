"""Frozen selections: what a bulk action will touch, fixed at the moment of the click.

"Retry all 1,234 matching" must retry exactly the 1,234 jobs the confirmation named, not whatever
matches by the time the operator confirms. So the click resolves the set (job ids, up to
MAX_JOB_IDS per project; or, for a queue, ``failed_before`` = that moment), keeps it here under a
random id bound to the browser's session, and the confirmation submits that set and nothing else.
Kept in memory for a few minutes: a selection outlives neither the process nor its purpose.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from failboard.board import Board
from failboard.exceptions import NotFound
from failboard.models import Action, ActionKind
from failboard.web.templating import iso

__all__ = ["Selection", "Selections"]

TTL_SECONDS = 15 * 60
MAX_KEPT = 500


@dataclass
class Selection:
    kind: ActionKind
    session: str
    # project -> the params of that project's one action
    params: dict[str, dict[str, Any]]
    counts: dict[str, int]
    truncated: list[str] = field(default_factory=list)
    moment: datetime | None = None
    created: float = field(default_factory=time.monotonic)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self, selection_id: str) -> dict[str, Any]:
        return {
            "selection": selection_id,
            "action": self.kind.value,
            "count": self.total,
            "counts": self.counts,
            "truncated": self.truncated,
            "moment": iso(self.moment),
        }


class Selections:
    def __init__(self) -> None:
        self._kept: dict[str, Selection] = {}
        self._lock = threading.Lock()

    def keep(self, selection: Selection) -> str:
        selection_id = secrets.token_urlsafe(16)
        with self._lock:
            now = time.monotonic()
            for key in [k for k, s in self._kept.items() if now - s.created > TTL_SECONDS]:
                del self._kept[key]
            while len(self._kept) >= MAX_KEPT:
                del self._kept[next(iter(self._kept))]
            self._kept[selection_id] = selection
        return selection_id

    def take(self, selection_id: str, session: str) -> Selection:
        """The selection, once: a second confirmation of the same click finds nothing."""
        with self._lock:
            selection = self._kept.get(selection_id)
            if (
                selection is None
                or selection.session != session
                or time.monotonic() - selection.created > TTL_SECONDS
            ):
                raise NotFound("this selection has expired: select again")
            del self._kept[selection_id]
            return selection

    @staticmethod
    def submit(
        board: Board, selection: Selection, selection_id: str, requested_by: str
    ) -> list[Action]:
        """One action per project, each keyed so a retried request makes no second row."""
        return [
            board.submit(
                project,
                selection.kind,
                params,
                requested_by=requested_by,
                idempotency_key=f"sel:{selection_id}:{project}",
            )
            for project, params in selection.params.items()
            if selection.counts.get(project)
        ]

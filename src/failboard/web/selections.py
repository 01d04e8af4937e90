"""Frozen selections: what a bulk action will touch, fixed at the moment of the click.

"Retry all 1,234 matching" must retry exactly the 1,234 jobs the confirmation named, not whatever
matches by the time the operator confirms. So the click resolves the set (job ids, up to
MAX_JOB_IDS per project; or, for a queue, ``failed_before`` = that moment), keeps it here under a
random id bound to the browser's session, and the confirmation submits that set and nothing else.

Kept in the spool database for 15 minutes (web/shared.py), so the confirmation may land on any
dashboard behind the load balancer; taken at most once across all of them. There is no
in-process fallback: what a selection submits goes to the spool anyway, so without the spool it
is a 503, like every other spool-backed answer.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from failboard.board import Board
from failboard.exceptions import NotFound
from failboard.models import Action, ActionKind
from failboard.web.shared import Clock, utc_now
from failboard.web.templating import iso

__all__ = ["Selection", "SelectionStore", "Selections"]

TTL_SECONDS = 15 * 60


@dataclass
class Selection:
    kind: ActionKind
    session: str
    # project -> the params of that project's one action
    params: dict[str, dict[str, Any]]
    counts: dict[str, int]
    truncated: list[str] = field(default_factory=list)
    moment: datetime | None = None

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

    def dumps(self) -> str:
        """The stored body (the session is a column of its own)."""
        moment = None if self.moment is None else self.moment.isoformat()
        body = {
            "kind": self.kind.value,
            "params": self.params,
            "counts": self.counts,
            "truncated": self.truncated,
            "moment": moment,
        }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def loads(cls, body: str, session: str) -> Selection:
        data = json.loads(body)
        moment = data["moment"]
        return cls(
            ActionKind(data["kind"]),
            session,
            data["params"],
            data["counts"],
            truncated=data["truncated"],
            moment=None if moment is None else datetime.fromisoformat(moment),
        )


class SelectionStore(Protocol):
    """Where every dashboard keeps the selections (:class:`failboard.web.shared.SharedState`).
    Raises SpoolError when it cannot answer."""

    def keep_selection(
        self, key: str, session: str, body: str, now: datetime, expires: datetime
    ) -> None: ...

    def take_selection(self, key: str, session: str, now: datetime) -> str | None:
        """The body, at most once across every dashboard; None when taken, expired, unknown or
        another session's."""


class Selections:
    """Frozen selections, shared by the dashboards. Blocking: call from a worker thread."""

    def __init__(
        self, store: SelectionStore, clock: Clock = utc_now, ttl_seconds: float = TTL_SECONDS
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl = timedelta(seconds=ttl_seconds)

    def keep(self, selection: Selection) -> str:
        selection_id = secrets.token_urlsafe(16)
        now = self.clock()
        self.store.keep_selection(
            selection_id, selection.session, selection.dumps(), now, now + self.ttl
        )
        return selection_id

    def take(self, selection_id: str, session: str) -> Selection:
        """The selection, once: a second confirmation of the same click, on this dashboard or
        another, finds nothing."""
        body = self.store.take_selection(selection_id, session, self.clock())
        if body is None:
            raise NotFound("this selection has expired: select again")
        return Selection.loads(body, session)

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

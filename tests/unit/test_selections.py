"""web/selections.py: a frozen selection round-trips through its store, is taken once, by its
own session, before it expires (an injected clock, no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from failboard.exceptions import NotFound
from failboard.models import ActionKind
from failboard.web.selections import Selection, Selections

START = datetime(2027, 1, 20, 12, 0, tzinfo=UTC)


class Kept:
    """A SelectionStore in a dict, with the shared one's rules."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str, datetime, bool]] = {}

    def keep_selection(
        self, key: str, session: str, body: str, now: datetime, expires: datetime
    ) -> None:
        self.rows[key] = (session, body, expires, False)

    def take_selection(self, key: str, session: str, now: datetime) -> str | None:
        found = self.rows.get(key)
        if found is None or found[0] != session or found[3] or found[2] <= now:
            return None
        self.rows[key] = (*found[:3], True)
        return found[1]


def _selection() -> Selection:
    moment = START - timedelta(minutes=1)
    params = {"shop": {"job_ids": ["1", "2"]}, "mail": {"job_ids": ["9"]}}
    return Selection(ActionKind.RETRY, "s1", params, {"shop": 2, "mail": 1}, ["shop"], moment)


def test_a_selection_is_taken_once_by_its_session_before_it_expires() -> None:
    now = [START]
    selections = Selections(Kept(), clock=lambda: now[0])
    chosen = _selection()
    key = selections.keep(chosen)
    with pytest.raises(NotFound):
        selections.take(key, "another session")
    assert selections.take(key, "s1") == chosen
    with pytest.raises(NotFound, match="expired"):
        selections.take(key, "s1")
    late = selections.keep(chosen)
    now[0] += timedelta(minutes=15)
    with pytest.raises(NotFound, match="expired"):
        selections.take(late, "s1")


def test_a_queue_selection_keeps_its_moment() -> None:
    queue = Selection(
        ActionKind.RETRY_QUEUE,
        "s1",
        {"shop": {"queue": None, "failed_before": "2027-01-20T11:59:00Z"}},
        {"shop": 7},
        moment=START,
    )
    again = Selection.loads(queue.dumps(), "s1")
    assert again == queue and again.to_json("x") == queue.to_json("x")

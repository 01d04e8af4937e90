"""The failed-jobs filters as they live in the URL, and the JobQuery they make.

One parser for the table, its counts, "select all matching" and the JSON API's job list, so all
four always mean the same set of jobs (the API passes its typed ``failed_after`` and
``failed_before`` to :meth:`Filters.query`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.datastructures import QueryParams

from failboard.exceptions import InvalidRequest
from failboard.models import JobQuery, Order, to_utc

__all__ = ["RANGES", "TEXT_FILTERS", "Filters"]

TEXT_FILTERS = ("queue", "connection", "name", "exception", "q")
RANGES = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
MAX_TEXT = 500  # a filter longer than this is a mistake or an attack, never a search


def _moment(name: str, text: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name}: not a date and time (use YYYY-MM-DDTHH:MM, UTC)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Filters:
    projects: tuple[str, ...] = ()
    text: dict[str, str] = field(default_factory=dict)
    range: str = ""
    start: str = ""
    end: str = ""
    order: Order = "newest"

    @classmethod
    def parse(cls, params: QueryParams | dict[str, Any]) -> Filters:
        def one(key: str) -> str:
            value = params.get(key) or ""
            return str(value).strip()[:MAX_TEXT]

        if isinstance(params, QueryParams):
            projects = tuple(dict.fromkeys(p for p in params.getlist("project") if p))
        else:
            raw = params.get("project") or ()
            listed = [raw] if isinstance(raw, str) else list(raw)
            projects = tuple(dict.fromkeys(p for p in listed if p))
        order: Order = "oldest" if one("order") == "oldest" else "newest"
        span = one("range")
        return cls(
            projects=projects,
            text={key: one(key) for key in TEXT_FILTERS if one(key)},
            range=span if span in RANGES else "",
            start=one("from"),
            end=one("to"),
            order=order,
        )

    def query(
        self,
        limit: int = 50,
        now: datetime | None = None,
        *,
        failed_after: datetime | None = None,
        failed_before: datetime | None = None,
    ) -> JobQuery:
        """The JobQuery of these filters, narrowed to ``failed_after``/``failed_before`` when
        given (the API's bounds); InvalidRequest names a bad filter."""
        after = _latest(_moment("from", self.start), failed_after)
        before = _earliest(_moment("to", self.end), failed_before)
        if self.range:
            after = max(after or datetime.min.replace(tzinfo=UTC), _now(now) - RANGES[self.range])
        return JobQuery(
            projects=self.projects,
            failed_after=after,
            failed_before=before,
            order=self.order,
            limit=limit,
            **self.text,
        )

    def params(self) -> list[tuple[str, str]]:
        """The URL parameters of these filters (the page, its links and its actions keep them)."""
        out = [("project", p) for p in self.projects]
        out += [(k, v) for k, v in self.text.items()]
        if self.range:
            out.append(("range", self.range))
        if self.start:
            out.append(("from", self.start))
        if self.end:
            out.append(("to", self.end))
        if self.order != "newest":
            out.append(("order", self.order))
        return out

    @property
    def queue_only(self) -> bool:
        """Only a queue (and projects) chosen: "retry all matching" can be one retry_queue per
        project with failed_before = now, however many jobs that is."""
        return set(self.text) == {"queue"} and not (self.range or self.start or self.end)

    @property
    def active(self) -> bool:
        return bool(self.projects or self.text or self.range or self.start or self.end)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _latest(*moments: datetime | None) -> datetime | None:
    given = [to_utc(m) for m in moments if m is not None]
    return max(given) if given else None


def _earliest(*moments: datetime | None) -> datetime | None:
    given = [to_utc(m) for m in moments if m is not None]
    return min(given) if given else None

"""The Jinja2 environment of the pages: autoescaped, with a few display helpers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import Response

from failboard.models import to_utc
from failboard.web.access import principal
from failboard.web.security import csrf_token

__all__ = ["ago", "render", "templates", "when"]

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def when(value: datetime | None) -> str:
    """UTC, to the second: operators compare times across projects and logs."""
    if value is None:
        return ""
    return to_utc(value).strftime("%Y-%m-%d %H:%M:%S")


def iso(value: datetime | None) -> str:
    return "" if value is None else to_utc(value).isoformat().replace("+00:00", "Z")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - to_utc(value)).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def number(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def path_part(value: str) -> str:
    # Job ids may hold slashes or anything else; the route takes the rest of the path.
    return quote(value, safe="")


def as_text(value: Any) -> str:
    """A payload value as its owner wrote it: JSON (null, false, 3), not Python (None, False)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


FIELD_LIMIT = 10_000


def cut(text: str, limit: int = FIELD_LIMIT) -> str:
    """The head of a field shown beside the payload (e.g. a job's serialized command, as big as
    its payload): Chromium lays a multi-megabyte line out millions of pixels wide whatever the
    CSS says, and the whole text is in the payload and its download anyway."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters: see the payload)"


def query_string(params: list[tuple[str, str]], **extra: str) -> str:
    pairs = [(k, v) for k, v in params if k not in extra] + [(k, v) for k, v in extra.items() if v]
    return urlencode(pairs)


env = templates.env
env.filters.update(
    when=when, iso=iso, ago=ago, number=number, path_part=path_part, as_text=as_text, cut=cut
)
env.globals.update(query_string=query_string)


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """A page with what every page needs: the CSRF token, the current section and who is
    signed in (templates show only the buttons ``principal`` may use; the routes still check)."""
    context = {
        "csrf_token": csrf_token(request),
        "path": request.url.path,
        "principal": principal(request),
        **context,
    }
    return templates.TemplateResponse(request, name, context, status_code=status_code)

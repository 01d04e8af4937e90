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


def query_string(params: list[tuple[str, str]], **extra: str) -> str:
    pairs = [(k, v) for k, v in params if k not in extra] + [(k, v) for k, v in extra.items() if v]
    return urlencode(pairs)


env = templates.env
env.filters.update(when=when, iso=iso, ago=ago, number=number, path_part=path_part, as_text=as_text)
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
